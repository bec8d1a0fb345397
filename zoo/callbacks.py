"""Callbacks shared by the recipes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, TextIO

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only


class SampleText(L.Callback):
    """After each validation (and at the end of fit) print a sample from a language model and log it
    to the experiment tracker, so a run shows what it has learned, not only a loss.

    The sample follows ``CharLanguageModel.predict``'s rule: ``length`` characters at ``temperature``,
    no run of whitespace longer than ``max_whitespace`` (``None``: unbounded), so a young model that
    loops on spaces still shows text."""

    def __init__(
        self,
        prime: str = "\n",
        length: int = 300,
        temperature: float = 0.8,
        seed: Optional[int] = 0,
        max_whitespace: Optional[int] = 32,
    ) -> None:
        self.prime, self.length, self.temperature, self.seed = prime, length, temperature, seed
        self.max_whitespace = max_whitespace

    @rank_zero_only
    def _show(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        text = pl_module.generate(self.prime, self.length, self.temperature, seed=self.seed, max_whitespace=self.max_whitespace)
        print(f"\n----- sample ({when}, step {trainer.global_step}) -----\n{text}\n" + "-" * 40, flush=True)
        for logger in trainer.loggers:
            if hasattr(logger, "log_text"):  # W&B's tables; a logger without them (CSV, TensorBoard) is skipped
                logger.log_text(key="samples", columns=["step", "text"], data=[[trainer.global_step, text]])

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._show(trainer, pl_module, "validation")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._show(trainer, pl_module, "end of training")


def jsonable(value: Any, drop: Iterable[str] = (), digits: Optional[int] = None) -> Any:
    """``value`` with tensors and arrays as (nested) lists, paths as strings and the keys in ``drop``
    left out of every dict; floats rounded to ``digits`` when given (keeps JSON lines short)."""
    drop = tuple(drop)
    if isinstance(value, dict):
        return {str(k): jsonable(v, drop, digits) for k, v in value.items() if k not in drop}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, drop, digits) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # torch.Tensor, numpy array or scalar
        return jsonable(value.tolist(), drop, digits)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and digits is not None:
        return round(value, digits)
    return value


class PredictionWriter(BasePredictionWriter):
    """``zoo predict`` writes what ``predict_step`` returns (a list of dicts per batch: translations,
    labels and probabilities, ...) to ``output`` as JSON lines, one per example, in the loader's order
    (tensors, such as attention weights, as nested lists).
    The file appears only when prediction finishes (written to ``output + ".partial"``, then renamed),
    so a crash never leaves a half-written file under the real name; on exit it prints
    ``predictions written to <path> (<n> lines)``. Under DDP each rank writes ``<output>.rank<r>``.
    ``zoo predict`` adds one (to ``predictions/<recipe>.jsonl``) when the trainer has no prediction writer."""

    def __init__(self, output: str = "predictions.jsonl") -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self._file: Optional[TextIO] = None
        self._path: Optional[Path] = None
        self._lines, self._done = 0, False

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = Path(self.output)
        if trainer.world_size > 1:
            path = path.with_name(f"{path.name}.rank{trainer.global_rank}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._file = open(f"{path}.partial", "w", encoding="utf-8")
        self._lines = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction: Any, batch_indices, batch, batch_idx: int, dataloader_idx: int
    ) -> None:
        for item in prediction if isinstance(prediction, list) else [prediction]:
            self._file.write(json.dumps(jsonable(item), ensure_ascii=False) + "\n")
            self._lines += 1

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._file.close()
        os.replace(f"{self._path}.partial", self._path)
        self._done = True

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Said here, after every on_predict_end: the progress bar (stdout) has closed its line by then.
        if stage == "predict" and self._done:
            print(f"predictions written to {self._path} ({self._lines} lines)", flush=True)
        self._done = False
