"""Image encoders from timm: any timm model name becomes a feature grid (for attention) and a vector.

    grid   = backbone(image)              (batch, locations, channels)   e.g. 7x7 = 49 locations
    vector = mean over locations          (batch, channels)

Shared by the captioner (one-to-many) and the frame classifier (many-to-many over video frames).
Also here: the geometry of a feature grid (:func:`grid_shape`, :func:`grid_coordinates`), a key that
names an encoder's exact weights (:func:`weights_key`, for feature caches), and :class:`FrameCNN`, a
small CNN for small images, registered with timm as ``zoo_frame_cnn`` (32 px video frames) and
``zoo_grid_cnn`` (64 px images).
"""

from __future__ import annotations

import difflib
import hashlib
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
            grid = features[:, getattr(self.backbone, "num_prefix_tokens", 0) :]
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


# ---- feature grids --------------------------------------------------------------------------------
def grid_shape(locations: int) -> Tuple[int, int]:
    """``(h, w)`` of a square feature grid with ``locations`` cells (``(1, L)`` if not square)."""
    side = math.isqrt(locations)
    return (side, side) if side * side == locations else (1, locations)


def grid_coordinates(locations: int, like: Tensor) -> Tensor:
    """``(1, L, 2)``: the (x, y) of every grid location (row-major), each in [-1, 1]."""
    h, w = grid_shape(locations)
    ys = torch.linspace(-1, 1, h, device=like.device, dtype=like.dtype) if h > 1 else like.new_zeros(1)
    xs = torch.linspace(-1, 1, w, device=like.device, dtype=like.dtype) if w > 1 else like.new_zeros(1)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], -1).unsqueeze(0)


def grid_offsets(locations: int, reach: int, device: Optional[torch.device] = None) -> Tensor:
    """``(L, L)`` long: for cells ``i`` and ``j`` of a square grid (row-major), the index of their offset
    ``(row_i - row_j, col_i - col_j)``, each clipped to ``[-reach, reach]``, in a ``(2 reach + 1)^2``
    table of offsets (row-major, offset (0, 0) in the middle)."""
    h, w = grid_shape(locations)
    rows = torch.arange(h, device=device).repeat_interleave(w)
    cols = torch.arange(w, device=device).repeat(h)
    dr = (rows[:, None] - rows[None, :]).clamp(-reach, reach) + reach
    dc = (cols[:, None] - cols[None, :]).clamp(-reach, reach) + reach
    return dr * (2 * reach + 1) + dc


def cells_in_boxes(boxes: Tensor, mask: Tensor, locations: int, size: float) -> Tensor:
    """``(B, L)`` bool: the grid cells (row-major, as :func:`grid_coordinates`) whose centre, in an image
    of ``size`` pixels, lies inside any of a row's boxes ``(x0, y0, x1, y1)`` ``(B, N, 4)`` where ``mask``
    ``(B, N)`` is True (the cell-centre rule of ``attention_in_box``)."""
    h, w = grid_shape(locations)
    ys = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5) * size / h
    xs = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5) * size / w
    y, x = (c.flatten() for c in torch.meshgrid(ys, xs, indexing="ij"))  # (L,), (L,)
    x0, y0, x1, y1 = (boxes[..., k, None] for k in range(4))  # (B, N, 1) each
    inside = (x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1) & mask[..., None]
    return inside.any(1)


def grid_adapter(
    channels: int, feature_dim: Optional[int], layers: int = 1, coordinates: bool = False
) -> Tuple[nn.Module, nn.Module, int]:
    """``(norm, project, M)``: what turns an encoder's grid of ``channels`` into the memory a task
    attends over. With ``feature_dim``: LayerNorm, then ``layers`` x (Linear + ReLU) per location to
    ``feature_dim``; without: the channels as they are (identities). ``coordinates``: each location's
    (x, y) is appended before the projection (:func:`adapt_grid`)."""
    extra = 2 if coordinates else 0
    size = feature_dim or channels + extra
    norm: nn.Module = nn.LayerNorm(channels) if feature_dim else nn.Identity()
    modules: List[nn.Module] = []
    for k in range(max(1, layers) if feature_dim else 0):
        modules += [nn.Linear(channels + extra if k == 0 else size, size), nn.ReLU()]
    return norm, (nn.Sequential(*modules) if modules else nn.Identity()), size


def adapt_grid(grid: Tensor, norm: nn.Module, project: nn.Module, coordinates: bool) -> Tensor:
    """``(B, L, C)`` → ``(B, L, M)``: normalise, append the (x, y) of each location, project
    (the modules of :func:`grid_adapter`)."""
    grid = norm(grid)
    if coordinates:
        grid = torch.cat([grid, grid_coordinates(grid.shape[1], grid).expand(grid.shape[0], -1, -1)], -1)
    return project(grid)


def weights_key(module: nn.Module, name: str) -> str:
    """A key naming an encoder and its exact weights (part of the feature-cache key)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{name}:{digest.hexdigest()[:16]}"


# ---- small CNNs for small images, registered with timm -------------------------------------------
class FrameCNN(nn.Module):
    """A few ``conv3x3 (stride 2) - BatchNorm - ReLU`` blocks: each halves the image, so 3 blocks take
    32 x 32 frames and 4 blocks 64 x 64 images to a 4 x 4 grid of ``widths[-1]`` channels; ``stem``
    channels first read the image at full resolution (stride 1), where a shape's corners are still
    there. Small enough to train end to end on a CPU; registered with timm (``zoo_frame_cnn``,
    ``zoo_grid_cnn``) so :class:`~zoo.encoders.ImageEncoder` builds it like any timm backbone."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64), in_chans: int = 3, input_size: int = 32, stem: int = 0) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        channels = in_chans
        for width, stride in [*([(stem, 1)] if stem else []), *((w, 2) for w in widths)]:
            layers += [
                nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        # what timm.data.resolve_data_config reads: inputs in [0, 1] are centred on 0.5
        self.pretrained_cfg = {
            "input_size": (in_chans, input_size, input_size),
            "mean": (0.5,) * 3,
            "std": (0.25,) * 3,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
        }

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).mean((2, 3))


def zoo_frame_cnn(pretrained: bool = False, **kwargs: Any) -> FrameCNN:
    """Three blocks (16, 32, 64 channels): 32 x 32 video frames -> 4 x 4 (the frame classifier's)."""
    if pretrained:
        raise ValueError("zoo_frame_cnn has no pretrained weights: it is trained with the frame classifier")
    return FrameCNN(widths=kwargs.get("widths", (16, 32, 64)), in_chans=kwargs.get("in_chans", 3))


def zoo_grid_cnn(pretrained: bool = False, **kwargs: Any) -> FrameCNN:
    """A stride-1 stem of 16 channels, then four blocks (32, 64, 96, 128 channels): 64 x 64 images -> a
    4 x 4 grid, one cell per place of a 4 x 4 layout (ShapesVQA's). Without the stem, a linear probe of
    its trained cells told circles, squares and triangles apart only 84% of the time (colours 99.9%):
    the first stride-2 layer loses the corners of 10-pixel shapes (docs/results.md, VQA)."""
    if pretrained:
        raise ValueError("zoo_grid_cnn has no pretrained weights: it is trained with the task")
    return FrameCNN(
        widths=kwargs.get("widths", (32, 64, 96, 128)),
        in_chans=kwargs.get("in_chans", 3),
        input_size=64,
        stem=kwargs.get("stem", 16),
    )


def register_small_cnns() -> None:
    """Make ``zoo_frame_cnn`` and ``zoo_grid_cnn`` timm model names (once; done when this module is
    imported, so every :class:`ImageEncoder` knows them)."""
    import timm
    from timm.models import register_model

    known = set(timm.list_models("zoo_*"))
    for model in (zoo_frame_cnn, zoo_grid_cnn):
        if model.__name__ not in known:
            register_model(model)


register_small_cnns()
