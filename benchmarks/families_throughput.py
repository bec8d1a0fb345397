"""Training and inference throughput of every cell family as a ratio to ``torch.nn.LSTM``, side by side
in one process, interleaved rounds (issue 24's table in docs/benchmarks.md).

    taskset -c 1 python benchmarks/families_throughput.py --lengths 512 2048 --repeats 3 --threads 1

One layer, input = hidden = 256, batch 16. Training: forward + backward of the mean squared output
(input requires grad), as benchmarks/scan_throughput.py times it. Inference: the whole sequence's
forward under ``torch.inference_mode``. Every zoo family runs ``Recurrent(cell=...)`` with
``backend="native"``: torch's fused layers for rnn/gru/lstm, the parallel scan for minGRU/minLSTM,
each modern family's ``sequence`` (its speed path). ``nn.LSTM`` is torch's layer itself.

Prints, per length and model, the median seconds of a training step and of an inference pass, tokens
per second of each, and the median (min-max) over rounds of each model's tokens/s as a ratio to
``nn.LSTM``'s in the same round (above 1: faster than nn.LSTM).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch
from scan_throughput import step  # benchmarks/ is on sys.path when this file runs

from zoo.families import CELLS
from zoo.malloc import keep_freed_memory
from zoo.recurrent import Recurrent

BATCH, SIZE = 16, 256
REFERENCE = "nn.LSTM"


def models(cells: List[str]) -> Dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    lstm = torch.nn.LSTM(SIZE, SIZE, batch_first=True)
    runs: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {REFERENCE: lambda x: lstm(x)[0]}
    for cell in cells:
        rnn = Recurrent(SIZE, SIZE, cell)
        runs[cell] = lambda x, rnn=rnn: rnn(x).output
    return runs


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--cells", nargs="+", default=[c for c in CELLS if c not in ("rnn", "minlstm")])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runs = models(args.cells)
    print(f"batch {BATCH}, input = hidden = {SIZE}, {args.threads} thread(s), CPU; one layer per model")
    print("| T | model | train s/step | train tokens/s | train vs nn.LSTM | infer s/pass | infer tokens/s | infer vs nn.LSTM |")
    print("|---|---|---|---|---|---|---|---|")
    for T in args.lengths:
        x = torch.randn(BATCH, T, SIZE, requires_grad=True)
        train: Dict[str, list] = {name: [] for name in runs}
        infer: Dict[str, list] = {name: [] for name in runs}
        for round in range(args.warmup + args.repeats):  # interleaved: every model once per round
            for name, run in runs.items():
                t_train = timed(lambda: step(run, x))
                with torch.inference_mode():
                    t_infer = timed(lambda: run(x.detach()))
                if round >= args.warmup:
                    train[name].append(t_train)
                    infer[name].append(t_infer)

        def ratio(times: Dict[str, list], name: str) -> str:
            r = sorted(ref / t for ref, t in zip(times[REFERENCE], times[name]))
            return f"{statistics.median(r):.2f}x ({r[0]:.2f}-{r[-1]:.2f})"

        for name in runs:
            tr, inf = statistics.median(train[name]), statistics.median(infer[name])
            print(
                f"| {T} | {name} | {tr:.3f} | {BATCH * T / tr:,.0f} | {ratio(train, name)} | "
                f"{inf:.3f} | {BATCH * T / inf:,.0f} | {ratio(infer, name)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
