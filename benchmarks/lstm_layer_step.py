"""Forward+backward of one recurrent layer alone, every path of ``backend="cells"`` against the plain
equations and against ``torch.nn`` — side by side in one process, interleaved rounds.

    python benchmarks/lstm_layer_step.py --repeats 7

Batch 64 x 128 steps x 128 input features (as in the char LM benchmark), hidden 512, input requires
grad, loss = mean of the squared outputs, 2 threads. Each cell runs unpadded and padded (lengths drawn
from 64..128, one of them 128). Variants:

- ``native``: ``torch.nn.LSTM/RNN`` (oneDNN; packed when padded);
- ``equations``: :mod:`zoo.cells`' ``recur`` in the plain-autograd time loop, nothing else;
- ``+hoisted``: the same loop with ``W_hh``'s gradient in one matmul (``kernels.HoistedProjection``);
- ``fused`` (LSTM unpadded): the whole layer as one node (``kernels.LSTMLayer``), ``fused-addmm`` the
  same with ``torch.addmm`` instead of oneDNN's packed matmul (``kernels.RecurrentMatmul``).

Prints per variant the median time, and the median (min-max) over rounds of its time / the
``equations`` variant's and / ``native``'s in the same round.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List
from unittest import mock

import torch
import torch.nn.functional as F

from zoo import kernels
from zoo.recurrent import Recurrent, Weights, step_loop
from zoo.sequences import lengths_to_mask


def loop(rnn: Recurrent, x, h0, w: Weights, mask, hoist: bool):
    """The step loop of ``backend="cells"``, with ``HoistedProjection`` (``Recurrent._hoisted_loop``) or
    without (the plain equations, no gates kept)."""
    xt = x.transpose(0, 1)
    previous: List[torch.Tensor] = []
    if hoist:
        x_proj = kernels.HoistedProjection.apply(xt, w.ih, w.b_ih, w.hh, w.b_hh, previous)
        w_hh, b_hh = w.hh.detach(), None
    else:
        x_proj, w_hh, b_hh = F.linear(xt, w.ih, w.b_ih), w.hh, w.b_hh
    out, _, _ = step_loop(rnn.equations_step(w_hh, b_hh), x_proj, h0, mask, False)
    if hoist:
        h = h0[0] if isinstance(h0, tuple) else h0
        previous.append(torch.cat([h.unsqueeze(0), out.transpose(0, 1)[:-1]]).detach())
    return out


def variants(rnn: Recurrent, x, lengths) -> Dict[str, Callable[[], torch.Tensor]]:
    w, mask = Weights.of(rnn.layers[0], 0), None
    if lengths is not None:
        mask = lengths_to_mask(lengths, x.shape[1])
    zeros = x.new_zeros(x.shape[0], rnn.hidden_size)
    h0 = (zeros, zeros) if rnn.cell == "lstm" else zeros
    runs = {
        "native": lambda: rnn(x, lengths, backend="native").output,
        "equations": lambda: loop(rnn, x, h0, w, mask, False),
    }
    if rnn.cell != "gru":  # GRU's r * (W_hn h + b_hn) makes W_hh's gradient differ from its gates'
        runs["+hoisted"] = lambda: loop(rnn, x, h0, w, mask, True)
    if rnn.cell == "lstm" and mask is None:
        runs["fused"] = lambda: rnn._fused_layer(x, h0, w)[0]

        def fused_addmm():
            with mock.patch.object(kernels, "onednn_packed", lambda weight, batch: None):
                return rnn._fused_layer(x, h0, w)[0]

        runs["fused-addmm"] = fused_addmm
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", nargs="+", default=["lstm", "rnn"], choices=["lstm", "gru", "rnn"])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--cases", nargs="+", default=["unpadded", "padded"], choices=["unpadded", "padded"])
    parser.add_argument("--variants", nargs="+", default=None, help="only these variants ('equations' is always run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 64 x 128 steps, input 128, hidden {args.hidden}")
    for cell in args.cells:
        for padded in [case == "padded" for case in args.cases]:
            torch.manual_seed(0)
            rnn = Recurrent(128, args.hidden, cell, backend="cells")
            x = torch.randn(64, 128, 128, requires_grad=True)
            lengths = None
            if padded:
                lengths = torch.randint(64, 129, (64,))
                lengths[0] = 128
            runs = variants(rnn, x, lengths)
            if args.variants:
                runs = {k: v for k, v in runs.items() if k in args.variants or k == "equations"}
            times: Dict[str, List[float]] = {k: [] for k in runs}
            for run in runs.values():  # warm-up
                run().square().mean().backward()
            for _ in range(args.repeats):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run().square().mean().backward()
                    times[name].append(time.perf_counter() - start)
                print("  round: " + "  ".join(f"{k} {1000 * v[-1]:.0f}" for k, v in times.items()), flush=True)
            print(f"\n{cell.upper()} {args.hidden}, {'padded' if padded else 'unpadded'}, {args.repeats} rounds")
            print(f"{'variant':20s} {'median ms':>9s}   {'/ equations (min-max)':24s} {'/ native (min-max)':24s}")
            for name, ts in times.items():
                cols = []
                for base in [b for b in ("equations", "native") if b in times]:
                    r = [a / b for a, b in zip(ts, times[base])]
                    cols.append(f"{statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})")
                print(f"{name:20s} {1000 * statistics.median(ts):9.0f}   " + " ".join(f"{c:24s}" for c in cols), flush=True)


if __name__ == "__main__":
    main()
