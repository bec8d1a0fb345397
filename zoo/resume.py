"""What lets ``zoo fit --ckpt_path last`` continue a killed run exactly (docs/reliability.md).

Lightning restores the weights, the optimiser, the schedule and its loop counters. Three more things
decide the losses that follow, and each is restored where it lives:

- **the data position** -- the datamodules record where training is in its epoch and serve the
  rest of that epoch, in the same order (:meth:`datamodules.loaders.SplitLoaders.state_dict`);
- **state carried between batches** -- the language model's hidden state travels in the checkpoint;
- **random numbers** (dropout masks, sampling): :class:`StepSeed` draws them from a generator seeded
  by the run's seed and the step, so they do not depend on what else consumed random numbers since
  the start (sanity checks, validation, dataloader iterators) -- those differ between an
  uninterrupted run and a resumed one, so restoring the generator's state from the checkpoint
  would not be enough.

And the checkpoint that survives a kill must be whole: :class:`AtomicCheckpointIO` writes it beside
its final name and renames it into place (Lightning's own writer goes through a temporary file in
``$TMPDIR`` and ``shutil.move``, which is a copy -- not atomic -- when ``$TMPDIR`` is on another
file system than the checkpoint folder).
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any, Dict, Optional

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from datamodules.download import write_atomic

__all__ = ["AtomicCheckpointIO", "StepSeed", "step_seed"]


def step_seed(seed: int, step: int, batch_idx: int, rank: int) -> int:
    """A 63-bit seed for one training batch, well mixed from the run's seed, the optimiser step, the
    batch's index in its epoch (several batches per step under gradient accumulation) and the rank."""
    return int(np.random.SeedSequence([seed, step, batch_idx, rank]).generate_state(1, np.uint64)[0] >> 1)


class StepSeed(L.Callback):
    """Seed torch, numpy and ``random`` before every training batch from :func:`step_seed`: the random
    numbers of batch ``k`` are the same in a run resumed from a checkpoint as in the uninterrupted run.

    ``seed``: the run's seed; ``None`` = the one ``seed_everything`` set (``PL_GLOBAL_SEED``), and no
    reseeding at all when the run was not seeded (it asked for no reproducibility)."""

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = seed

    def run_seed(self) -> Optional[int]:
        if self.seed is not None:
            return self.seed
        value = os.environ.get("PL_GLOBAL_SEED")
        return int(value) if value is not None else None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        seed = self.run_seed()
        if seed is None:
            return
        value = step_seed(seed, trainer.global_step, batch_idx, trainer.global_rank)
        torch.manual_seed(value)  # every device's generator too
        np.random.seed(value % 2**32)
        random.seed(value)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint format, written atomically: to a temporary file in the checkpoint's own
    folder, then renamed over the old file (:func:`datamodules.download.write_atomic`). A kill at any
    moment leaves the previous checkpoint or the new one, whole -- never a half-written file."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (a local file is written)")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(path, buffer.getvalue())
