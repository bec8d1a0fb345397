"""Plot train/val loss curves of char-LM runs from their CSVLogger metrics.csv files.

python benchmarks/plot_lm_curves.py OUT.png LABEL=runs/char_lm_shakespeare/version_0/metrics.csv [...]
"""

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    series = defaultdict(list)
    with open(path) as f:
        for row in csv.DictReader(f):
            for key in ("train/loss", "val/loss"):
                if row.get(key):
                    series[key].append((int(row["step"]), float(row[key])))
    return series


def main() -> None:
    out, runs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for (label, path), colour in zip(runs, ["tab:blue", "tab:orange", "tab:green"]):
        s = read(path)
        ax.plot(*zip(*s["train/loss"]), color=colour, alpha=0.3, lw=0.8)
        ax.plot(*zip(*s["val/loss"]), color=colour, marker="o", ms=3, label=f"{label} (val)")
    ax.axhline(1.47, color="k", ls="--", lw=0.8, label="target 1.47")
    ax.set(xlabel="optimizer step (batch of 64 x 128 characters)", ylabel="loss (nats/char)", ylim=(1.2, 2.2))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
