"""Test-only callbacks that SIGKILL the `zoo fit` process they run in at a chosen moment (tests/test_resume.py
adds them to a run's config; nothing in zoo/ knows about them). SIGKILL, not an exception: nothing is
flushed, no `finally` runs -- what a crashed machine or the OOM killer leaves behind."""

from __future__ import annotations

import os
import signal

import lightning as L


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(L.Callback):
    """Kill the run once ``step`` optimiser steps are done and checkpointed, at the moment ``where`` names:

    - ``train``: before the next training batch (mid-epoch);
    - ``validation``: during the first validation that starts after that step, after its first batch;
    - ``checkpoint``: while the next checkpoint is written, after its bytes are on disk and before
      they are renamed into place (``os.replace``, how :class:`zoo.resume.AtomicCheckpointIO` publishes)."""

    def __init__(self, step: int, where: str = "train") -> None:
        if where not in ("train", "validation", "checkpoint"):
            raise ValueError(f"where must be train, validation or checkpoint, got {where!r}")
        self.step, self.where = step, where

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        if self.where == "train":
            die()
        if self.where == "checkpoint":
            os.replace = _dying_replace(os.replace)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.where == "validation" and not trainer.sanity_checking and trainer.global_step >= self.step and batch_idx == 0:
            die()


def _dying_replace(replace):
    def dying(src, dst, *args, **kwargs):
        if str(dst).endswith(".ckpt"):
            die()
        return replace(src, dst, *args, **kwargs)

    return dying
