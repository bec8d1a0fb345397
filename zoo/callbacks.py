"""Callbacks shared by the recipes."""

from __future__ import annotations

from typing import Optional

import lightning as L
from lightning.pytorch.utilities import rank_zero_only


class SampleText(L.Callback):
    """After each validation (and at the end of fit) print a sample from a language model and log it
    to the experiment tracker, so a run shows what it has learned, not only a loss."""

    def __init__(self, prime: str = "\n", length: int = 300, temperature: float = 0.8, seed: Optional[int] = 0) -> None:
        self.prime, self.length, self.temperature, self.seed = prime, length, temperature, seed

    @rank_zero_only
    def _show(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        text = pl_module.generate(self.prime, self.length, self.temperature, seed=self.seed)
        print(f"\n----- sample ({when}, step {trainer.global_step}) -----\n{text}\n" + "-" * 40, flush=True)
        for logger in trainer.loggers:
            if hasattr(logger, "log_text"):
                try:
                    logger.log_text(key="samples", columns=["step", "text"], data=[[trainer.global_step, text]])
                except Exception:  # a tracker without tables must not stop training
                    pass

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._show(trainer, pl_module, "validation")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._show(trainer, pl_module, "end of training")
