"""Gradients through time: ||dL/dh_t|| against the distance from the loss, for RNN, GRU and LSTM.

Character language models (hidden 128, python-stdlib) read 200 characters; the loss is the
cross-entropy of the last prediction only, so the gradient reaching step t has travelled
``200 - 1 - t`` steps back. Measured (:func:`zoo.gradients.lm_gradient_through_time`, averaged over
64 held-out windows) at initialization and after a brief training (``--steps`` steps of truncated
BPTT over 100-character windows, AdamW 3e-3) with the global gradient norm clipped to 1.0 and
without clipping. The same seed gives the clipped and the unclipped run the same start and data.

    python -m experiments.gradients_through_time     # ~3 minutes on 1 CPU core
"""

from __future__ import annotations

import argparse

import lightning as L
import numpy as np
import torch

from experiments.common import IMAGES, char_data, evaluate_lm, markdown_table, pyplot, save_json, train_char_lm, use_threads
from zoo.gradients import GradientNormLogger, by_distance, lm_gradient_through_time
from zoo.tasks.language_model import CharLanguageModel

DISTANCES = [1, 10, 25, 50, 100, 199]


def measure(model, windows: torch.Tensor) -> dict:
    layer = lm_gradient_through_time(model, windows)[0]
    out = {"hidden": by_distance(layer["hidden"]).tolist()}
    if "cell" in layer:
        out["cell"] = by_distance(layer["cell"]).tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    use_threads()
    data = char_data(batch_size=32, seq_len=100, max_chars=300_000)
    val = data.val_streams.flatten()
    generator = torch.Generator().manual_seed(123)
    starts = torch.randint(0, val.numel() - 202, (64,), generator=generator)
    windows = torch.stack([val[s : s + 201] for s in starts.tolist()])  # 200 inputs + 1 target

    results = {}
    for cell in args.cells:
        for condition, clip in (("init", None), ("clip 1.0", 1.0), ("no clip", None)):
            common = dict(cell=cell, hidden_size=args.hidden, embedding_dim=32, lr=3e-3, warmup_steps=20, grad_clip=clip)
            logger = GradientNormLogger(every_n_steps=1, group_by="top")
            if condition == "init":  # the same seed as the training runs: their starting point
                L.seed_everything(args.seed, verbose=False)
                model = CharLanguageModel(vocab=data.vocab, **common)
            else:
                model, recorder = train_char_lm(data, args.steps, [logger], seed=args.seed, **common)
            curves = measure(model, windows)
            entry = {"curves": curves}
            if condition != "init":
                entry.update(
                    val_loss=evaluate_lm(model, data, max_batches=20),
                    train_loss=recorder.losses,
                    grad_norm=[h["total"] for h in logger.history],
                    seconds=recorder.seconds,
                )
            results[f"{cell} / {condition}"] = entry
            h = np.array(curves["hidden"])
            print(
                f"{cell:4s} {condition:8s} ||dL/dh|| at distance 0: {h[0]:.3g}; relative at 10/50/100/199: "
                + " ".join(f"{h[d] / h[0]:.2g}" for d in (10, 50, 100, 199))
                + (f"; val loss {entry['val_loss']:.3f}" if "val_loss" in entry else ""),
                flush=True,
            )
    save_json("gradients_through_time", {"config": vars(args), "distances_reported": DISTANCES, "results": results})

    header = ["model", "‖∂L/∂h‖ at 0", *[f"÷ at {d}" for d in DISTANCES], "val loss", "max grad norm in training"]
    rows = []
    for name, entry in results.items():
        h = np.array(entry["curves"]["hidden"])
        rows.append(
            [
                name,
                f"{h[0]:.3g}",
                *[f"{h[d] / h[0]:.1e}" for d in DISTANCES],
                f"{entry['val_loss']:.3f}" if "val_loss" in entry else "–",
                f"{max(entry['grad_norm']):.3g}" if "grad_norm" in entry else "–",
            ]
        )
    print(markdown_table(header, rows))

    plt = pyplot()
    conditions = ["init", "clip 1.0", "no clip"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=100, sharey=True)
    colors = {"rnn": "tab:red", "gru": "tab:green", "lstm": "tab:blue"}
    for ax, condition in zip(axes, conditions):
        for cell in args.cells:
            curves = results[f"{cell} / {condition}"]["curves"]
            ax.semilogy(curves["hidden"], color=colors.get(cell), label=f"{cell}: h")
            if "cell" in curves:
                ax.semilogy(curves["cell"], color=colors.get(cell), ls="--", label=f"{cell}: c (cell state)")
        title = "at initialization" if condition == "init" else f"after {args.steps} steps, {condition}"
        ax.set_title(title)
        ax.set_xlabel("distance from the loss (steps)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("‖∂L/∂h_t‖ (mean over 64 windows)")
    axes[0].set_ylim(bottom=1e-12)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    IMAGES.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMAGES / "gradients_through_time.png")
    print(f"wrote {IMAGES / 'gradients_through_time.png'}")


if __name__ == "__main__":
    main()
