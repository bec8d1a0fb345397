"""What every data set of images with words shares (captions: :mod:`datamodules.captions`; questions:
:mod:`datamodules.vqa`): the encoder's preprocessing, the image files of per-split records, and the
pictures a model's attention figures are drawn on.

A subclass sets ``self.opts`` (its settings, with at least ``encoder``, ``batch_size`` and the loader
options) and ``self.records`` (``{split: [record]}``, each record with an ``image``), and provides
:meth:`ImageDataModule.read_records`. After ``setup`` the model reads ``image_config`` (a dict: the
preprocessing it must apply to raw images at inference) and ``encoder_name``, and draws its figures on
:meth:`ImageDataModule.preview`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import lightning as L
import numpy as np
from PIL import Image

from .images import ImageConfig, load_image
from .loaders import SplitLoaders

__all__ = ["ImageDataModule"]


class ImageDataModule(SplitLoaders, L.LightningDataModule):
    """Images of per-split records, prepared for one encoder (``encoder``: a timm name whose data config
    gives the input size, crop and normalisation; ``image_size``, ``crop_pct`` override them)."""

    def __init__(self, encoder: Optional[str], image_size: Optional[int] = None, crop_pct: Optional[float] = None) -> None:
        super().__init__()
        self._config = ImageConfig.for_encoder(encoder, image_size, crop_pct)
        self.records: Dict[str, List[Any]] = {}

    # -- what a subclass provides ------------------------------------------------------------------------
    def read_records(self) -> Dict[str, List[Any]]:
        """``{split: [record]}`` (checks the files are there; downloads what can be downloaded)."""
        raise NotImplementedError

    def load_image(self, split: str, i: int) -> Image.Image:
        """Record ``i`` of ``split`` as a PIL image (default: the file at ``record.image``)."""
        return load_image(self.records[split][i].image)

    # -- the model reads these ------------------------------------------------------------------------------
    @property
    def image_config(self) -> Dict[str, Any]:
        return self._config.as_dict()

    @property
    def encoder_name(self) -> Optional[str]:
        return self.opts.encoder

    def preview(self, split: str, i: int) -> np.ndarray:
        """Image ``i`` of ``split`` as the model sees it (resized and cropped, not normalized), ``(S, S, 3)`` uint8."""
        return np.asarray(self._config.geometric()(self.load_image(split, i)))

    # -- building ---------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        self.read_records()  # checks the files are there (and downloads what can be downloaded)

    def loader_options(self) -> Dict[str, Any]:
        return vars(self.opts)
