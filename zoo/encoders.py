"""Image encoders from timm: any timm model name becomes a feature grid (for attention) and a vector.

    grid   = backbone(image)              (batch, locations, channels)   e.g. 7x7 = 49 locations
    vector = mean over locations          (batch, channels)

Shared by the captioner (one-to-many) and the frame classifier (many-to-many over video frames).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import timm
import torch
from torch import Tensor, nn


class ImageEncoder(nn.Module):
    def __init__(
        self,
        name: str = "resnet18",
        pretrained: bool = False,
        trainable: bool = False,
        weights_path: Optional[str] = None,
    ) -> None:
        """
        Args:
            name: any timm model name (``timm.list_models()``).
            pretrained: load timm's pretrained weights (downloaded from the Hugging Face Hub by timm,
                or read from ``weights_path``).
            trainable: fine-tune the backbone; ``False`` freezes it (and keeps BatchNorm in eval mode),
                which also lets datamodules cache its features.
            weights_path: a local weights file for the backbone (for machines without network).
        """
        super().__init__()
        self.name, self.trainable = name, trainable
        kwargs: Dict[str, Any] = {"num_classes": 0, "global_pool": ""}
        if weights_path is not None:
            if not Path(weights_path).is_file():
                raise FileNotFoundError(f"encoder weights_path {weights_path} does not exist")
            kwargs["pretrained_cfg_overlay"] = {"file": str(weights_path)}
            pretrained = True
        try:
            self.backbone = timm.create_model(name, pretrained=pretrained, **kwargs)
        except RuntimeError as e:
            if "Unknown model" in str(e):
                close = difflib.get_close_matches(name, timm.list_models(), n=5)
                raise ValueError(f"unknown timm model {name!r}; similar names: {close}") from None
            raise
        except Exception as e:  # network errors from the Hub come in many types
            if pretrained and weights_path is None:
                raise RuntimeError(
                    f"could not fetch pretrained weights for timm model {name!r} ({type(e).__name__}: {e}). "
                    "On a machine without network, download them elsewhere and pass weights_path, "
                    "or set pretrained: false."
                ) from e
            raise
        self.out_channels: int = self.backbone.num_features
        if not trainable:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> "ImageEncoder":
        super().train(mode)
        if not self.trainable:
            self.backbone.eval()  # a frozen backbone keeps its BatchNorm statistics
        return self

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """``images`` ``(batch, 3, H, W)`` → ``(grid (batch, locations, channels), vector (batch, channels))``."""
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            features = self.backbone.forward_features(images)
        if features.dim() == 4:  # CNN: (batch, channels, h, w)
            grid = features.flatten(2).transpose(1, 2)
        else:  # transformer: (batch, tokens, channels)
            grid = features[:, getattr(self.backbone, "num_prefix_tokens", 0):]
        return grid, grid.mean(1)

    def grid_size(self, image_size: int) -> Tuple[int, int]:
        """Height and width of the feature grid for a square image of ``image_size`` pixels."""
        with torch.no_grad():
            features = self.backbone.forward_features(torch.zeros(1, 3, image_size, image_size))
        if features.dim() == 4:
            return features.shape[2], features.shape[3]
        side = int((features.shape[1] - getattr(self.backbone, "num_prefix_tokens", 0)) ** 0.5)
        return side, side

    def data_config(self) -> Dict[str, Any]:
        """timm's preprocessing for this backbone: input size, mean, std, interpolation."""
        return timm.data.resolve_data_config({}, model=self.backbone)

    def transform(self, training: bool = False):
        return timm.data.create_transform(**self.data_config(), is_training=training)
