"""Validation loss against wall clock for char-LM runs, read from their W&B offline runs (every recipe
logs through WandbLogger; ``_runtime`` is the seconds since the run started).

    python benchmarks/plot_lm_wallclock.py docs/img/shakespeare_families.png \
        LSTM=runs/wandb/offline-run-...  GRU=... [--target 1.47]

Prints each run's last and best validation loss and the seconds at which it was logged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

from zoo.tracking import offline_history

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curve(run_dir: Path) -> list:
    """``(seconds since start, val/loss)`` of every validation the run logged."""
    return [(row["_runtime"], row["val/loss"]) for row in offline_history(run_dir, wait_for_exit=False) if "val/loss" in row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+", help="LABEL=W&B offline run folder")
    parser.add_argument("--target", type=float, default=None)
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for label, path in (run.split("=", 1) for run in args.runs):
        points = curve(Path(path))
        best = min(points, key=lambda p: p[1])
        print(
            f"{label}: {len(points)} validations; last {points[-1][1]:.4f} at {points[-1][0]:.0f} s; best {best[1]:.4f} at {best[0]:.0f} s"
        )
        ax.plot([s / 60 for s, _ in points], [v for _, v in points], marker="o", ms=3, label=f"{label} ({points[-1][1]:.3f})")
    if args.target:
        ax.axhline(args.target, color="k", ls="--", lw=0.8, label=f"{args.target}")
    ax.set(xlabel="wall clock (minutes since the run started)", ylabel="validation loss (nats/char)", ylim=(1.3, 2.4))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
