"""Training-step throughput of minGRU and minLSTM (the parallel scan) against ``torch.nn.GRU`` and
``torch.nn.LSTM``, side by side in one process, interleaved rounds.

    python benchmarks/scan_throughput.py --lengths 128 512 2048 8192 --repeats 3

One layer, input 512, hidden 512, batch 16, input requires grad, loss = mean of the squared outputs;
a step is forward + backward. Models:

- ``minGRU``, ``minLSTM``: ``Recurrent(cell="mingru" | "minlstm")``, ``backend="native"``
  (:func:`zoo.scan.linear_scan`, the chunked scan in linear space);
- ``minGRU log-space``: the same parameters through Heinsen's ``cumsum`` + ``logcumsumexp``
  (:func:`zoo.scan.log_space_scan`), the direct version the issue measured;
- ``nn.GRU``, ``nn.LSTM``: torch's fused layers.

Prints, per length, each model's median time per step, tokens/s, the median (min-max) over rounds of
each model's speed-up over ``nn.GRU`` in the same round, and the memory: on a GPU the peak allocated
during the step; on the CPU the bytes autograd keeps for the backward (tensors saved by the forward,
each storage counted once), which is what grows with ``T``. ``--profile T`` prints
``torch.profiler``'s table of one minGRU step instead.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F

from zoo import scan
from zoo.cells import MinGRUCell
from zoo.malloc import keep_freed_memory
from zoo.recurrent import Recurrent, Weights

BATCH, SIZE = 16, 512


def log_space_mingru(rnn: Recurrent, x: torch.Tensor) -> torch.Tensor:
    w = Weights.of(rnn.layers[0], 0)
    a, b = MinGRUCell.coefficients(F.linear(x, w.ih, w.b_ih))
    return scan.log_space_scan(a, b)


def models(device: torch.device) -> Dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    mingru = Recurrent(SIZE, SIZE, "mingru").to(device)
    minlstm = Recurrent(SIZE, SIZE, "minlstm").to(device)
    gru = torch.nn.GRU(SIZE, SIZE, batch_first=True).to(device)
    lstm = torch.nn.LSTM(SIZE, SIZE, batch_first=True).to(device)
    return {
        "minGRU": lambda x: mingru(x).output,
        "minLSTM": lambda x: minlstm(x).output,
        "minGRU log-space": lambda x: log_space_mingru(mingru, x),
        "nn.GRU": lambda x: gru(x)[0],
        "nn.LSTM": lambda x: lstm(x)[0],
    }


def step(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    """One forward+backward; returns the bytes of the tensors the forward saved for the backward
    (each storage counted once): what autograd holds between the two, and what grows with ``T``."""
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = run(x).square().mean()
    loss.backward()
    return sum(storages.values())


def measured(run, x, device) -> Tuple[float, int]:
    """Seconds of one step, and its memory: the peak allocated during the step on a GPU, the bytes
    saved for the backward on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    saved = step(run, x)
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - start, torch.cuda.max_memory_allocated() - base
    return time.perf_counter() - start, saved


def profile(T: int, device: torch.device) -> None:
    run = models(device)["minGRU"]
    x = torch.randn(BATCH, T, SIZE, device=device, requires_grad=True)
    step(run, x)
    with torch.profiler.profile() as prof:
        step(run, x)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first (0 at long T: the first step is then timed too)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip", nargs="*", default=[], help="models to leave out, e.g. 'minGRU log-space'")
    parser.add_argument("--profile", type=int, default=0, help="print torch.profiler's table of a minGRU step at this T")
    parser.add_argument(
        "--malloc",
        choices=["zoo", "system"],
        default="zoo",
        help="zoo: keep freed memory as `zoo` commands do (zoo/malloc.py); system: glibc's defaults",
    )
    args = parser.parse_args()
    kept = args.malloc == "zoo" and keep_freed_memory()
    print(f"malloc: {'freed memory kept (zoo.malloc.keep_freed_memory)' if kept else 'the system defaults'}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.profile:
        return profile(args.profile, device)
    runs = {k: v for k, v in models(device).items() if k not in args.skip}
    print(f"batch {BATCH}, input = hidden = {SIZE}, {args.threads} threads, {device}; forward+backward per step")
    print("| T | model | s/step (median) | tokens/s | memory (MB) | speed-up over nn.GRU (median, min-max) |")
    print("|---|---|---|---|---|---|")
    for T in args.lengths:
        x = torch.randn(BATCH, T, SIZE, device=device, requires_grad=True)
        times: Dict[str, list] = {name: [] for name in runs}
        memory: Dict[str, int] = {name: 0 for name in runs}
        for round in range(args.warmup + args.repeats):  # interleaved: every model once per round
            for name, run in runs.items():
                seconds, used = measured(run, x, device)
                memory[name] = max(memory[name], used)
                if round >= args.warmup:
                    times[name].append(seconds)
        for name in runs:
            median = statistics.median(times[name])
            gain = ""
            if name != "nn.GRU" and "nn.GRU" in runs:
                r = sorted(g / t for g, t in zip(times["nn.GRU"], times[name]))
                gain = f"{statistics.median(r):.2f}x ({r[0]:.2f}-{r[-1]:.2f})"
            print(
                f"| {T} | {name} | {median:.3f} | {BATCH * T / median:,.0f} | {memory[name] / 2**20:,.0f} | {gain} |", flush=True
            )


if __name__ == "__main__":
    main()
