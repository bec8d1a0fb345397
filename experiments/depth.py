"""(b) Depth: 1 vs 2 vs 3 stacked LSTM layers on the character language model.

Same data (the first 400k characters of python-stdlib, 10% held out), same width (128), same
optimizer and schedule, same budget of optimizer steps (batches of 32 windows of 64 characters);
the model is the zoo's :class:`CharLanguageModel` trained by a Lightning ``Trainer``. Reports the
validation loss (nats and bits per character), perplexity, parameters and training speed.

    python -m experiments.depth             # ~4 minutes on 1 CPU core
"""

from __future__ import annotations

import argparse
import math

from experiments.common import (
    IMAGES,
    char_data,
    evaluate_lm,
    markdown_table,
    params,
    pyplot,
    save_json,
    train_char_lm,
    use_threads,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    use_threads()
    data = char_data(batch_size=32, seq_len=64, max_chars=400_000)
    results = []
    for layers in args.layers:
        model, recorder = train_char_lm(
            data,
            args.steps,
            seed=args.seed,
            cell="lstm",
            hidden_size=args.hidden,
            embedding_dim=64,
            num_layers=layers,
            dropout=0.0,
            lr=3e-3,
            warmup_steps=50,
            grad_clip=1.0,
        )
        val = evaluate_lm(model, data)
        chars = args.steps * 32 * 64
        r = {
            "layers": layers,
            "params": params(model),
            "val_loss": val,
            "val_bpc": val / math.log(2),
            "val_ppl": math.exp(val),
            "train_seconds": recorder.seconds,
            "chars_per_second": chars / recorder.seconds,
            "final_train_loss": sum(recorder.losses[-25:]) / 25,
            "curve": recorder.losses,
        }
        results.append(r)
        print(
            f"{layers} layer(s): val loss {val:.3f} ({r['val_bpc']:.3f} bpc), {recorder.seconds:.0f} s, {r['chars_per_second']:.0f} chars/s",
            flush=True,
        )
    save_json("depth", {"config": vars(args), "results": results})
    header = ["layers", "parameters", "val loss (nats/char)", "bits/char", "val perplexity", "train time (s)", "chars/s"]
    print(
        markdown_table(
            header,
            [
                [
                    r["layers"],
                    f"{r['params']:,}",
                    f"{r['val_loss']:.3f}",
                    f"{r['val_bpc']:.3f}",
                    f"{r['val_ppl']:.2f}",
                    f"{r['train_seconds']:.0f}",
                    f"{r['chars_per_second']:,.0f}",
                ]
                for r in results
            ],
        )
    )
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for r in results:
        curve = r["curve"]
        smooth = [sum(curve[max(0, i - 24) : i + 1]) / len(curve[max(0, i - 24) : i + 1]) for i in range(len(curve))]
        ax.plot(smooth, label=f"{r['layers']} layer(s)")
        seconds = [r["train_seconds"] * (i + 1) / len(curve) for i in range(len(curve))]
        bx.plot(seconds, smooth, label=f"{r['layers']} layer(s)")
    ax.set_xlabel("optimizer step")
    bx.set_xlabel("wall time (s, 1 CPU thread)")
    for a in (ax, bx):
        a.set_ylabel("training loss (25-step mean)")
        a.set_ylim(top=3.5)
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.suptitle(f"LSTM {args.hidden} char LM on python-stdlib, depth 1-3, {args.steps} steps each")
    fig.tight_layout()
    IMAGES.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMAGES / "depth.png")
    print(f"wrote {IMAGES / 'depth.png'}")


if __name__ == "__main__":
    main()
