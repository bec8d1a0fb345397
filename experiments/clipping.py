"""(d) Gradient clipping on vs off for a vanilla RNN language model.

A tanh RNN (hidden 128) character model on python-stdlib, truncated BPTT over 100-character
windows, trained with plain SGD (as in the lecture, so a huge gradient becomes a huge step) at a
constant learning rate, once with the global gradient norm clipped to ``--clip`` and once without.
The same seed gives both runs the same initialization and batches. :class:`zoo.gradients.GradientNormLogger`
records the gradient norm *before* clipping at every step.

    python -m experiments.clipping          # ~1 minute on 1 CPU core
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from experiments.common import IMAGES, LossRecorder, char_data, evaluate_lm, markdown_table, pyplot, save_json, use_threads
from zoo.gradients import GradientNormLogger
from zoo.tasks.language_model import CharLanguageModel


class SGDCharLanguageModel(CharLanguageModel):
    """The zoo's language model with plain SGD at a constant rate instead of AdamW + schedule."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--nonlinearity", default="tanh")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot_only", action="store_true", help="redraw the figure from experiments/results/clipping.json")
    args = parser.parse_args()
    if args.plot_only:
        import json

        from experiments.common import RESULTS

        saved = json.loads((RESULTS / "clipping.json").read_text())
        c = saved["config"]
        plot(saved["runs"], c["clip"], c["hidden"], c["lr"])
        return
    use_threads()

    data = char_data(batch_size=32, seq_len=100, max_chars=300_000)
    runs = {}
    for name, clip in ((f"clip {args.clip:g}", args.clip), ("no clip", None)):
        logger = GradientNormLogger(every_n_steps=1, group_by="module")
        model, recorder = _train(data, args, clip, logger)
        losses = np.array(recorder.losses, dtype=np.float64)
        norms = np.array([h["total"] for h in logger.history])
        hh = np.array([h.get("rnn.layers.0.weight_hh", float("nan")) for h in logger.history])
        finite = np.isfinite(losses)
        val = evaluate_lm(model, data, max_batches=20) if finite.all() else float("nan")
        runs[name] = {
            "val_loss": val,
            "losses": losses.tolist(),
            "grad_norm": norms.tolist(),
            "grad_norm_weight_hh": hh.tolist(),
            "max_grad_norm": float(np.nanmax(norms)),
            "median_grad_norm": float(np.nanmedian(norms)),
            "steps_norm_over_10": int((norms > 10).sum()),
            "loss_spikes": int(_spikes(losses)),
            "final_train_loss": float(np.nanmean(losses[-25:])),
            "nan": bool(not finite.all()),
            "seconds": recorder.seconds,
        }
        r = runs[name]
        print(
            f"{name:9s} val {val:.3f}  final train {r['final_train_loss']:.3f}  grad norm max {r['max_grad_norm']:.3g} "
            f"median {r['median_grad_norm']:.3g}  steps with norm>10: {r['steps_norm_over_10']}  loss spikes: {r['loss_spikes']}",
            flush=True,
        )
    save_json("clipping", {"config": vars(args), "runs": runs})
    header = [
        "run",
        "val loss (nats/char)",
        "final train loss",
        "max grad norm",
        "median grad norm",
        "steps with norm > 10",
        "loss spikes (> +0.5 over the previous 10-step mean)",
    ]
    print(
        markdown_table(
            header,
            [
                [
                    name,
                    f"{r['val_loss']:.3f}",
                    f"{r['final_train_loss']:.3f}",
                    f"{r['max_grad_norm']:.3g}",
                    f"{r['median_grad_norm']:.3g}",
                    r["steps_norm_over_10"],
                    r["loss_spikes"],
                ]
                for name, r in runs.items()
            ],
        )
    )
    plot(runs, args.clip, args.hidden, args.lr)


def plot(runs: dict, clip: float, hidden: int, lr: float) -> None:
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.6), dpi=100)
    for name, r in runs.items():
        ax.semilogy(r["losses"], label=name, lw=0.9)
        bx.semilogy(r["grad_norm"], label=name, lw=0.9)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/char, log scale)")
    ax.set_title(f"tanh RNN {hidden}, SGD lr {lr:g}")
    bx.axhline(clip, color="gray", ls=":", label=f"clip threshold {clip:g}")
    bx.set_xlabel("step")
    bx.set_ylabel("global gradient norm before clipping")
    bx.set_title("gradient norm (GradientNormLogger)")
    for a in (ax, bx):
        a.legend(fontsize=8)
        a.grid(alpha=0.3, which="both")
    fig.tight_layout()
    IMAGES.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMAGES / "clipping.png")
    print(f"wrote {IMAGES / 'clipping.png'}")


def _spikes(losses: np.ndarray) -> int:
    """Steps whose loss exceeds the mean of the previous 10 steps by more than 0.5 nats."""
    count = 0
    for i in range(10, len(losses)):
        if not math.isfinite(losses[i]) or losses[i] > np.mean(losses[i - 10 : i]) + 0.5:
            count += 1
    return count


def _train(data, args, clip, logger):
    import lightning as L

    L.seed_everything(args.seed, verbose=False)
    model = SGDCharLanguageModel(
        vocab=data.vocab,
        cell="rnn",
        hidden_size=args.hidden,
        embedding_dim=32,
        lr=args.lr,
        grad_clip=clip,
        nonlinearity=args.nonlinearity,
    )
    recorder = LossRecorder()
    trainer = L.Trainer(
        max_steps=args.steps,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
        devices=1,
        callbacks=[recorder, logger],
    )
    trainer.fit(model, train_dataloaders=data.train_dataloader())
    return model, recorder


if __name__ == "__main__":
    main()
