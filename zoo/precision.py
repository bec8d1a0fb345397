"""``trainer.precision: auto``: the fastest training precision for this model on this machine, found by
timing a few training steps of the actual model on one real batch in each candidate precision.

Which precision is fastest depends on the CPU, not only on the model: bf16 autocast made the
Shakespeare LSTM's step 1.75x faster on an AMD EPYC (AVX512-BF16) and 1.5x slower on an Intel Xeon
(issue 19), so a recipe that promises a time cannot hard-code it. The measurement runs on a copy of the
model, inside a forked random state, so the run that follows starts exactly as it would without it.
"""

from __future__ import annotations

import copy
import logging
import random
import statistics
import time
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import move_data_to_device

log = logging.getLogger(__name__)

#: autocast dtype of each precision that can be timed (None: no autocast)
AUTOCAST: Dict[str, Optional[torch.dtype]] = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
#: the precisions tried on each device type
CANDIDATES: Dict[str, Tuple[str, ...]] = {"cpu": ("32-true", "bf16-mixed"), "cuda": ("32-true", "16-mixed", "bf16-mixed")}


def step_seconds(model: L.LightningModule, batch: Any, precision: str, steps: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of one training step (``training_step``, backward, AdamW step) of a
    copy of ``model`` on ``batch`` in ``precision``, after ``warmup`` untimed steps."""
    if precision not in AUTOCAST:
        raise ValueError(f"precision {precision!r} cannot be timed: expected one of {', '.join(AUTOCAST)}")
    probe = copy.deepcopy(model).train()
    device = next(probe.parameters()).device
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-6)
    dtype = AUTOCAST[precision]
    times = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer here to log to
        for i in range(warmup + steps):
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = probe.training_step(batch, i)
            loss = out["loss"] if isinstance(out, dict) else out
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def choose_precision(
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    candidates: Optional[Sequence[str]] = None,
    steps: int = 3,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> Tuple[str, Dict[str, float]]:
    """Time ``steps`` training steps of ``model`` on the first training batch of ``datamodule`` in each
    of ``candidates`` (default :data:`CANDIDATES` for the device type) and return the fastest and the
    seconds per step of each. The choice and the timings are printed and logged. ``model`` itself is
    neither built nor trained here (a copy is), and the random state is restored afterwards."""
    device = torch.device(device)
    candidates = tuple(candidates or CANDIDATES.get(device.type, ("32-true",)))
    unknown = [p for p in candidates if p not in AUTOCAST]
    if unknown:
        raise ValueError(f"precision {unknown[0]!r} cannot be timed: expected one of {', '.join(AUTOCAST)}")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            datamodule.prepare_data()
            datamodule.setup("fit")
            probe = copy.deepcopy(model)
            if hasattr(probe, "adopt_data"):  # a zoo task takes its vocabulary etc. from the data
                probe.adopt_data(datamodule)
                probe.build_if_ready()
            probe.to(device)
            batch = move_data_to_device(next(iter(datamodule.train_dataloader())), device)
            timings = {p: step_seconds(probe, batch, p, steps, warmup) for p in candidates}
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    choice = min(timings, key=timings.get)
    message = (
        f"precision auto: {choice} (seconds per training step: " + ", ".join(f"{p} {s:.3f}" for p, s in timings.items()) + ")"
    )
    print(message, flush=True)
    log.info(message)
    return choice, timings
