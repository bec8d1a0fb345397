"""Shared plumbing of the experiments: where results go, a small char-LM training run, tables."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

os.environ.setdefault("WANDB_MODE", "offline")

import lightning as L  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"  # JSON with every number a table shows
IMAGES = REPO / "docs" / "img"


def save_json(name: str, payload) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def markdown_table(header: Sequence[str], rows: List[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def use_threads() -> None:
    """Two shared cores: one intra-op thread per process keeps runs comparable and polite."""
    torch.set_num_threads(int(os.environ.get("ZOO_THREADS", "1")))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---- a short char-LM run on python-stdlib, with the zoo's own modules ---------------------------
class LossRecorder(L.Callback):
    """Keeps the training loss of every step (``self.losses``) and the wall time of the run."""

    def __init__(self) -> None:
        self.losses: List[float] = []
        self.seconds = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self._t0


def char_data(batch_size: int = 32, seq_len: int = 64, max_chars: int = 400_000):
    from datamodules.char_corpus import CharCorpusDataModule

    data = CharCorpusDataModule(corpus="python-stdlib", batch_size=batch_size, seq_len=seq_len, max_chars=max_chars)
    data.setup()
    return data


def train_char_lm(
    data,
    steps: int,
    callbacks: Optional[list] = None,
    seed: int = 0,
    **model_args,
):
    """Train a :class:`CharLanguageModel` for ``steps`` optimizer steps (no validation during the run).
    Returns ``(model, recorder)``."""
    from zoo.tasks.language_model import CharLanguageModel

    L.seed_everything(seed, verbose=False)
    model = CharLanguageModel(vocab=data.vocab, **model_args)
    recorder = LossRecorder()
    trainer = L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
        devices=1,
        callbacks=[recorder, *(callbacks or [])],
    )
    trainer.fit(model, train_dataloaders=data.train_dataloader())
    return model, recorder


def evaluate_lm(model, data, max_batches: Optional[int] = None) -> float:
    """Mean validation cross-entropy (nats per character), the state carried across windows."""
    from datamodules.char_corpus import validation_nll

    return validation_nll(model, data, max_batches)[0]


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def rows_to_dicts(header: Sequence[str], rows: List[Sequence]) -> List[Dict]:
    return [dict(zip(header, row)) for row in rows]
