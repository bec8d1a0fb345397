"""(c) Unidirectional vs bidirectional when the label depends on the future.

Sequences of 12..24 random digits (padded in a batch; the true lengths are passed to the network).
Two tagging tasks, one label per position:

- ``previous``: label_t = x[t-1] (the past; 0 at the first position) — a left-to-right RNN can do it;
- ``next``: label_t = x[t+1] (the future; 0 at the last position) — a left-to-right RNN can only
  guess (chance about 11%: digits are 1..9), a bidirectional one, whose output at t concatenates a forward state
  (x[..t]) and a backward state (x[t..]), can read it off its backward half.

The unidirectional network is also tried twice as wide as each direction of the bidirectional one
(more parameters than the bidirectional network), so the difference is not a matter of size.
(A label that *combines* both sides, e.g. ``(x[t-1] + x[t+1]) mod 10``, is not linearly separable in
the concatenated states — a linear head on [forward; backward] cannot compute a sum mod 10 — so it
would test the head, not the direction.)

    python -m experiments.bidirectional     # ~1 minute on 1 CPU core
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from experiments.common import IMAGES, markdown_table, params, pyplot, save_json, use_threads
from zoo.recurrent import Recurrent

DIGITS = 10
MIN_LEN, MAX_LEN = 12, 24


def batch(size: int, generator: torch.Generator, task: str):
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (size,), generator=generator)
    x = torch.randint(1, DIGITS, (size, MAX_LEN), generator=generator)
    steps = torch.arange(MAX_LEN)
    mask = steps[None] < lengths[:, None]
    x = x * mask  # 0 = padding / no neighbour
    if task == "previous":
        target = F.pad(x, (1, 0))[:, :-1]
    elif task == "next":
        target = F.pad(x, (0, 1))[:, 1:] * (steps[None] + 1 < lengths[:, None])
    else:
        raise ValueError(f"unknown task {task!r}")
    labels = torch.where(mask, target, torch.full_like(x, -100))
    return x, lengths, labels


class Tagger(nn.Module):
    def __init__(self, hidden: int, bidirectional: bool, cell: str = "lstm"):
        super().__init__()
        self.embed = nn.Embedding(DIGITS, 16)
        self.rnn = Recurrent(16, hidden, cell, bidirectional=bidirectional)
        self.head = nn.Linear(self.rnn.output_size, DIGITS)

    def forward(self, x, lengths):
        return self.head(self.rnn(self.embed(x), lengths).output)


def run(name: str, hidden: int, bidirectional: bool, steps: int, task: str, seed: int = 0):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = Tagger(hidden, bidirectional)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    curve, start = [], time.perf_counter()
    for _ in range(steps):
        x, lengths, labels = batch(64, generator, task)
        logits = model(x, lengths)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        curve.append(float(loss))
    with torch.no_grad():
        x, lengths, labels = batch(2000, torch.Generator().manual_seed(10_000 + seed), task)
        predicted = model(x, lengths).argmax(-1)
        real = labels != -100
        accuracy = float((predicted == labels)[real].float().mean())
    return {
        "model": name,
        "task": task,
        "hidden": hidden,
        "bidirectional": bidirectional,
        "params": params(model),
        "accuracy": accuracy,
        "final_loss": sum(curve[-50:]) / 50,
        "seconds": time.perf_counter() - start,
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    use_threads()
    configs = [("uni LSTM 32", 32, False), ("uni LSTM 64", 64, False), ("bi LSTM 32+32", 32, True)]
    results = []
    for task in ("previous", "next"):
        for name, hidden, bidirectional in configs:
            r = run(name, hidden, bidirectional, args.steps, task, args.seed)
            results.append(r)
            print(
                f"{task:8s} {name:14s} accuracy {r['accuracy']:.3f} ({r['params']} parameters, {r['seconds']:.1f} s)", flush=True
            )
    save_json("bidirectional", {"config": vars(args), "results": results})
    header = ["model", "parameters", "label = previous digit (past)", "label = next digit (future)"]
    table = []
    for name, _, _ in configs:
        past, future = (next(r for r in results if r["model"] == name and r["task"] == t) for t in ("previous", "next"))
        table.append([name, past["params"], f"{past['accuracy']:.3f}", f"{future['accuracy']:.3f}"])
    print(markdown_table(header, table))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100, sharey=True)
    for ax, task in zip(axes, ("previous", "next")):
        for r in (r for r in results if r["task"] == task):
            curve = torch.tensor(r["curve"])
            smooth = curve.unfold(0, min(20, len(curve)), 1).mean(1)
            ax.plot(range(len(curve) - len(smooth) + 1, len(curve) + 1), smooth, label=f"{r['model']} (acc {r['accuracy']:.2f})")
        ax.axhline(float(torch.log(torch.tensor(float(DIGITS - 1)))), color="gray", ls=":", label="guessing")
        ax.set_title(f"label_t = x[t{'-' if task == 'previous' else '+'}1]")
        ax.set_xlabel("training step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training loss (20-step mean)")
    fig.tight_layout()
    IMAGES.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMAGES / "bidirectional.png")
    print(f"wrote {IMAGES / 'bidirectional.png'}")


if __name__ == "__main__":
    main()
