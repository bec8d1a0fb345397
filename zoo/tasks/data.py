"""What a task may ask of its datamodule, declared once as protocols (:class:`typing.Protocol`).

A task never probes its datamodule by a name written at the call (``getattr(dm, "preview", None)``: a
misspelt name there silently turns a feature off). It asks whether the datamodule *is* one of these
(``isinstance(dm, PreviewData)``, the names written here once) and then calls the method; the tests
check that the zoo's datamodules are what their tasks expect (tests/test_architecture.py).

- :class:`MeasuringData` -- a measure only the data can make (ShapesCaptions' and ShapesVQA's
  ``attn_in_box``), logged by every task as ``val/<name>`` (:meth:`~zoo.tasks.base.TaskModule.data_measures`);
- :class:`PreviewData` -- an example's image as the model sees it, for attention figures;
- :class:`FeatureCacheData` -- cached features of a frozen image encoder (caption data);
- :class:`ClassificationData` -- raw test texts and their labels (every text-classification
  datamodule), which a classifier is scored on (:meth:`~zoo.tasks.classifier.SequenceClassifier.score`).

The data a task is *built* from (vocabularies, label names, tokenizers) is declared by the task's
``data_hparams`` (hyper-parameter -> the datamodule attribute or function that holds it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = ["MeasuringData", "PreviewData", "FeatureCacheData", "ClassificationData"]


@runtime_checkable
class MeasuringData(Protocol):
    def evaluation_measures(self, batch: Dict[str, Any], predictions: List[Dict[str, Any]]) -> Dict[str, List[float]]:
        """``{name: [one value per example]}`` for a batch and the task's predictions on it."""


@runtime_checkable
class PreviewData(Protocol):
    def preview(self, split: str, i: int) -> np.ndarray:
        """Example ``i`` of ``split``'s image as the model sees it (resized, cropped), ``(S, S, 3)`` uint8."""


@runtime_checkable
class FeatureCacheData(Protocol):
    def attach_features(
        self,
        encode: Callable[[Tensor], Tensor],
        encoder_key: str,
        device: torch.device | str = "cpu",
        batch_size: Optional[int] = None,
        build: bool = True,
        log: Callable[[str], None] = print,
    ) -> Dict[str, Path]:
        """Serve ``encode``'s cached features instead of images from now on (built once when missing)."""


@runtime_checkable
class ClassificationData(Protocol):
    label_names: Optional[List[str]]

    def test_examples(self, limit: Optional[int] = None) -> Tuple[Sequence[str], Sequence[int]]:
        """The raw test texts and their label indices (``limit``: at most that many of each label)."""
