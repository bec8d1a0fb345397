"""Images as the encoders see them: decoding any file to RGB, and an encoder's preprocessing.

- :func:`load_image`: open and fully decode an image as RGB (grayscale, 16-bit, palette, RGBA and
  CMYK converted); a corrupt or truncated file is a :class:`CorruptImageError` naming it.
- :class:`ImageConfig`: an encoder's preprocessing as timm's data config gives it (square input of
  ``size`` pixels, resize the shorter side to ``size / crop_pct``, centre crop, normalize);
  :class:`Normalize` applies it, in numpy.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from .errors import DataFormatError, InputError, MissingInputError, summary

__all__ = [
    "MAX_PIXELS",
    "CorruptImageError",
    "ImageConfig",
    "Normalize",
    "as_rgb_image",
    "load_image",
    "open_image",
    "set_max_pixels",
]


class CorruptImageError(DataFormatError):
    """An image file that cannot be decoded (corrupt, truncated, not an image); names the file."""


#: The most pixels (width x height) an image may declare: Pillow's own default limit (89,478,485, a
#: 9459 x 9459 image, 256 MiB as RGB), here a refusal where Pillow only warns. A decompression bomb
#: (a small file declaring a huge image, such as a 0.9 MB PNG of 30,000 x 30,000) is refused from its
#: header, before any pixel is decoded. Raise it with :func:`set_max_pixels` (``--max-pixels N`` on the
#: commands).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


def set_max_pixels(pixels: int) -> None:
    """Let images of up to ``pixels`` pixels be read in this process (:data:`MAX_PIXELS`, and Pillow's
    own bomb guard, which refuses at twice its limit, with it)."""
    global MAX_PIXELS
    if pixels < 1:
        raise InputError(f"the pixel limit must be >= 1, got {pixels}")
    MAX_PIXELS = Image.MAX_IMAGE_PIXELS = int(pixels)


def too_large(path: str | Path, pixels: int) -> CorruptImageError:
    return CorruptImageError(
        f"{path}: the image declares {pixels:,} pixels, over the limit of {MAX_PIXELS:,} (a decompression "
        "bomb, or a very large image); raise the limit with --max-pixels N if you trust the file"
    )


def open_image(path: str | Path) -> Image.Image:
    """``Image.open(path)`` (the header only) with the zoo's errors: a missing file is a
    :class:`MissingInputError`, an unreadable one or one over :data:`MAX_PIXELS` a
    :class:`CorruptImageError` naming it. Use it as a context manager, as ``Image.open``."""
    try:
        with warnings.catch_warnings():  # Pillow's warning above its limit: refused just below instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except FileNotFoundError:
        raise MissingInputError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as err:  # above twice Pillow's limit: refused by Pillow itself
        declared = re.search(r"\((\d+) pixels\)", str(err))
        raise too_large(path, int(declared.group(1)) if declared else MAX_PIXELS + 1) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise corrupt(path, err) from None
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise too_large(path, image.width * image.height)
    return image


def corrupt(path: str | Path, err: BaseException) -> CorruptImageError:
    return CorruptImageError(f"{path}: cannot decode the image ({summary(err)}); the file is corrupt, truncated or not an image")


def load_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image as RGB. Grayscale (L, I;16), palette (P), RGBA/LA and CMYK are
    converted to RGB (CMYK through PIL's conversion, alpha dropped). A truncated or corrupt file, or one
    declaring more than :data:`MAX_PIXELS` pixels, is a :class:`CorruptImageError` naming it (PIL decodes
    lazily, so ``load()`` is forced here); a missing one a :class:`MissingInputError`."""
    path = Path(path)
    with open_image(path) as image:
        try:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits
                array = np.asarray(image, dtype=np.float64)
                top = array.max() or 1.0
                image = Image.fromarray((array * (255.0 / top)).astype(np.uint8), "L")
            return image.convert("RGB")
        except Image.DecompressionBombError:  # a frame of an animation declaring more than the header
            raise too_large(path, MAX_PIXELS + 1) from None
        except (OSError, SyntaxError, ValueError) as err:
            raise corrupt(path, err) from None


def as_rgb_image(image: Any) -> Image.Image:
    """A path, a PIL image or a uint8 ``(H, W, 3)`` array as an RGB PIL image (what a model's
    ``predict`` accepts); a path goes through :func:`load_image`."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise InputError(f"an image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        return Image.fromarray(image)
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    raise InputError(f"an image must be a path, a PIL image or a uint8 (H, W, 3) array, got {type(image).__name__}")


@dataclass
class ImageConfig:
    """The preprocessing of an encoder, as timm's data config gives it: square input of ``size``
    pixels, resize the shorter side to ``size / crop_pct``, centre-crop, normalize."""

    size: int = 224
    crop_pct: float = 0.875
    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"

    @classmethod
    def for_encoder(cls, encoder: Optional[str], size: Optional[int] = None, crop_pct: Optional[float] = None) -> "ImageConfig":
        """timm's data config for a model name (read from its pretrained config; no model is built);
        ``size``/``crop_pct`` override it."""
        config = cls()
        if encoder:
            import timm

            try:
                pretrained = timm.get_pretrained_cfg(encoder)
            except Exception:  # an unknown name: let the model say so, with close matches
                pretrained = None
            if pretrained is not None:
                data = timm.data.resolve_data_config(pretrained_cfg=pretrained.to_dict())
                config = cls(
                    int(data["input_size"][-1]),
                    float(data.get("crop_pct", 0.875)),
                    tuple(data["mean"]),
                    tuple(data["std"]),
                    str(data.get("interpolation", "bicubic")),
                )
        if size is not None:
            config.size = int(size)
        if crop_pct is not None:
            config.crop_pct = float(crop_pct)
        return config

    def as_dict(self) -> Dict[str, Any]:
        return {
            "size": self.size,
            "crop_pct": self.crop_pct,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    def geometric(self):
        """Resize + centre crop (PIL in, PIL out): what the model sees, before normalization."""
        from torchvision import transforms as T

        mode = {
            "bicubic": T.InterpolationMode.BICUBIC,
            "bilinear": T.InterpolationMode.BILINEAR,
            "nearest": T.InterpolationMode.NEAREST,
        }.get(self.interpolation, T.InterpolationMode.BICUBIC)
        return T.Compose([T.Resize(int(math.floor(self.size / self.crop_pct)), interpolation=mode), T.CenterCrop(self.size)])

    def transform(self) -> "Normalize":
        """PIL image → normalized ``(3, size, size)`` float tensor."""
        return Normalize(self.geometric(), self.mean, self.std)


class Normalize:
    """``geometric`` (PIL → PIL), then ``(pixels / 255 - mean) / std`` as a ``(3, H, W)`` float tensor;
    in numpy, several times faster than torchvision's ToTensor + Normalize on small images."""

    def __init__(self, geometric: Callable, mean: Sequence[float], std: Sequence[float]) -> None:
        self.geometric = geometric
        self.scale = (1.0 / (255.0 * np.asarray(std, dtype=np.float32))).reshape(1, 1, 3)
        self.shift = (np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)).reshape(1, 1, 3)

    def __call__(self, image: Image.Image) -> Tensor:
        pixels = np.asarray(self.geometric(image), dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray((pixels * self.scale - self.shift).transpose(2, 0, 1)))

    def __repr__(self) -> str:
        return f"Normalize({self.geometric}, shift={self.shift.ravel().tolist()}, scale={self.scale.ravel().tolist()})"
