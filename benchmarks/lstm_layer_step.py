"""Forward+backward of one LSTM 512 layer alone: `backend="native"` (torch.nn.LSTM, oneDNN) vs
`backend="cells"`, optionally vs the cells backend as of a git revision — interleaved in one process.

    python benchmarks/lstm_layer_step.py --repeats 11 --against HEAD

Input batch 64 x 128 steps x 128 features (as in the char LM benchmark), requires grad; loss = mean
of the squared outputs; 2 threads. Prints the median (and the minimum) time per forward+backward and
the ratio to native. Faster to run than lm_throughput.py, and without the rest of the model.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lm_throughput import load_recurrent_at
from zoo.recurrent import Recurrent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--against", metavar="GIT_REF", default=None, help="also time the cells backend as of this git revision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rnn = Recurrent(128, 512, "lstm")
    x = torch.randn(64, 128, 128, requires_grad=True)
    old = load_recurrent_at(args.against) if args.against else None

    def run(kind: str) -> None:
        if kind == "native" or kind == "cells":
            out = rnn(x, backend=kind).output
        else:  # the cells time loop as of --against
            out = old._run_cells(rnn, rnn.layers[0], x, None, None, False)[0]
        out.square().mean().backward()

    kinds = ["native", "cells"] + ([f"cells@{args.against}"] if old is not None else [])
    times = {k: [] for k in kinds}
    for k in kinds:
        run(k)  # warm-up
    for _ in range(args.repeats):
        for k in kinds:
            start = time.perf_counter()
            run(k)
            times[k].append(time.perf_counter() - start)
    for name, agg in (("median", statistics.median), ("min", min)):
        value = {k: agg(v) for k, v in times.items()}
        print(f"{name:6s} " + "  ".join(f"{k} {1000 * v:.0f} ms ({v / value['native']:.2f}x)" for k, v in value.items()))


if __name__ == "__main__":
    main()
