"""Training throughput of CharLanguageModel: `zoo fit` (Lightning) vs a plain PyTorch loop, and the
"cells" backend vs "native" — side by side in one process, interleaved, so machine noise hits both.

    python benchmarks/lm_throughput.py                 # both comparisons, LSTM and GRU
    python benchmarks/lm_throughput.py --only lightning
    python benchmarks/lm_throughput.py --only cells --cell lstm --against HEAD   # + the cells backend as of HEAD

Model: embedding 128 -> LSTM 512 -> linear; batches of 64 streams x 128 characters; 2 threads.
Each number is tokens (characters) per second over `--steps` timed steps after `--warmup` steps;
the reported ratio is of the medians over `--repeats` interleaved rounds.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from datamodules.char_corpus import CharCorpusDataModule
from zoo.sequences import detach_state
from zoo.tasks.language_model import CharLanguageModel


def make_data(batch: int, seq: int) -> CharCorpusDataModule:
    dm = CharCorpusDataModule("python-stdlib", batch_size=batch, seq_len=seq, max_chars=1_500_000)
    dm.setup()
    return dm


def load_recurrent_at(ref: str):
    """``zoo.recurrent.Recurrent`` as it was at git revision ``ref`` (with that revision's ``zoo.cells``
    and, where they exist there, ``zoo.kernels`` and ``zoo.sequences``), imported under another name,
    so an earlier cells backend can be timed beside the current one."""
    repo = Path(__file__).resolve().parents[1]
    package = Path(tempfile.mkdtemp()) / "zoo_at_ref"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("recurrent", "cells", "kernels", "sequences"):
        source = subprocess.run(["git", "show", f"{ref}:zoo/{name}.py"], cwd=repo, capture_output=True, text=True)
        if source.returncode == 0:
            (package / f"{name}.py").write_text(source.stdout)
        elif name in ("recurrent", "cells"):
            raise RuntimeError(f"git show {ref}:zoo/{name}.py failed: {source.stderr.strip()}")
    sys.path.insert(0, str(package.parent))
    return importlib.import_module("zoo_at_ref.recurrent").Recurrent


def plain_loop(dm, cell: str, backend: str, steps: int, warmup: int, compile_cells: bool = False, old=None) -> float:
    """The same model and optimisation written as a bare PyTorch loop: no Lightning. ``old``: a
    ``Recurrent`` class from :func:`load_recurrent_at` whose cells time loop replaces the current one."""
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=dm.vocab, cell=cell, backend=backend).train()
    if old is not None:
        model.rnn._run_cells = types.MethodType(old._run_cells, model.rnn)
    if compile_cells:
        model.rnn._run_cells = torch.compile(model.rnn._run_cells, dynamic=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    state, start, tokens = None, None, 0
    for i, batch in enumerate(dm.train_dataloader()):
        if i == warmup:
            start, tokens = time.perf_counter(), 0
        logits, state = model(batch["ids"], state)
        state = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens += batch["targets"].numel()
        if i == warmup + steps - 1:
            break
    return tokens / (time.perf_counter() - start)


class StepTimer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.tokens = warmup, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start, self.tokens = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None:
            self.tokens += batch["targets"].numel()
            self.end = time.perf_counter()


def lightning_fit(dm, cell: str, steps: int, warmup: int) -> float:
    """`zoo fit` as the recipe runs it: Lightning Trainer, automatic optimisation, the model's own
    gradient clipping and LR schedule, logging every 10 steps, progress bar on."""
    torch.manual_seed(0)
    model = CharLanguageModel(cell=cell, lr=2e-3, warmup_steps=10)
    timer = StepTimer(warmup)
    trainer = L.Trainer(
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=L.pytorch.loggers.CSVLogger("/tmp/zoo-bench"),
        log_every_n_steps=10,
        enable_checkpointing=False,
        callbacks=[timer],
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(model, datamodule=dm)
    return timer.tokens / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["lightning", "cells"], default=None)
    parser.add_argument("--compile", action="store_true", help="also time the cells backend under torch.compile")
    parser.add_argument("--cell", choices=["lstm", "gru"], default=None, help="only this cell in the cells comparison")
    parser.add_argument("--against", metavar="GIT_REF", default=None, help="also time the cells backend as of this git revision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dm = make_data(64, 128)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 64 x 128, LSTM 512, emb 128")

    if args.only in (None, "lightning"):
        plain, zoo = [], []
        for _ in range(args.repeats):
            plain.append(plain_loop(dm, "lstm", "native", args.steps, args.warmup))
            zoo.append(lightning_fit(dm, "lstm", args.steps, args.warmup))
            print(f"  plain {plain[-1]:8.0f} tok/s   zoo fit {zoo[-1]:8.0f} tok/s", flush=True)
        p, z = statistics.median(plain), statistics.median(zoo)
        print(f"LIGHTNING  plain loop {p:.0f} tok/s | zoo fit {z:.0f} tok/s | wrapper cost {100 * (p / z - 1):+.1f}%")

    if args.only in (None, "cells"):
        old = load_recurrent_at(args.against) if args.against else None
        for cell in [args.cell] if args.cell else ["lstm", "gru"]:
            variants = ["native", "cells"] + (["cells+compile"] if args.compile else [])
            variants += [f"cells@{args.against}"] if old is not None else []
            results = {v: [] for v in variants}
            for _ in range(args.repeats):
                for v in variants:
                    backend = v.split("+")[0].split("@")[0]
                    results[v].append(
                        plain_loop(dm, cell, backend, args.steps, args.warmup, "compile" in v, old if "@" in v else None)
                    )
                print("  " + "  ".join(f"{v} {results[v][-1]:8.0f}" for v in variants), flush=True)
            med = {v: statistics.median(r) for v, r in results.items()}
            line = " | ".join(f"{v} {med[v]:.0f} tok/s ({med['native'] / med[v]:.2f}x native step time)" for v in variants)
            print(f"CELLS {cell.upper():4s} {line}")


if __name__ == "__main__":
    main()
