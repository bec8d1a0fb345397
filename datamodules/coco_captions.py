"""Image captioning data: COCO 2014 (Karpathy split), Flickr8k and Flickr30k, and the machinery every
caption datamodule shares (also :class:`datamodules.synthetic.ShapesCaptions`).

The flow::

    records (image + its reference captions, per split) ── missing images / empty captions skipped,
        │                                                   with counts
        ▼
    word tokenizer trained on the *train* captions only (datamodules.text: <pad>=0 <unk> <bos> <eos>)
        ▼
    images → timm's eval transform for the encoder (resize, centre crop, normalize)
        │     or, with a frozen encoder, features computed once and cached on disk
        ▼
    batches {"images" (B,3,S,S) | "features" (B,L,C), "ids" (B,T), "lengths", "index",
             "references" (list of lists of str, validation/test)}

Training iterates over (image, caption) pairs; validation and test over images, the loss on the first
reference and BLEU/CIDEr-D against all of them.

**Feature cache.** A model with a frozen encoder calls :meth:`CaptionDataModule.attach_features`
with its encoder function and a key naming the encoder (timm name + a hash of its weights). Features
of every image of a split are computed once (the eval transform, no augmentation) and stored as a
float16 ``.npy`` under ``zoo_home()/cache/features``, keyed by the images' identities (path, size,
mtime), the encoder key and the transform; later runs and later epochs read them memory-mapped and
never run the CNN. Written to a temporary file and renamed into place: an interrupted build is never
mistaken for a cache entry.

**Bad input** (issue 9):

- an image listed in the captions but absent on disk: skipped at setup and counted in a warning
  (``missing_images="error"`` makes it an error naming the first few paths);
- a corrupt or truncated JPEG: :class:`CorruptImageError` naming the file (``bad_images="skip"``
  drops it from its batch, with a warning naming it);
- grayscale, palette, RGBA, CMYK, 16-bit images: converted to RGB (documented, no warning);
- an empty caption (or one that leaves no words): skipped and counted; an image left with no
  caption is skipped too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import lightning as L
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .download import zoo_home
from .text import BOS_ID, EOS_ID, PAD_ID, encode_texts, train_tokenizer

__all__ = [
    "COCOCaptionsDataModule", "FlickrCaptionsDataModule", "CaptionDataModule", "CaptionRecord",
    "CorruptImageError", "MissingDataError", "caption_collate", "load_image", "read_karpathy_json",
    "read_flickr_token", "karpathy_rows_to_records",
]

FEATURE_CACHE_VERSION = 1
SPLITS = ("train", "val", "test")


class MissingDataError(FileNotFoundError):
    """A dataset's files are not where they should be; the message says what is missing, where to put
    it and how to download it."""


class CorruptImageError(ValueError):
    """An image file that cannot be decoded (corrupt, truncated, not an image); names the file."""


# ---- images ----------------------------------------------------------------------------------------
def load_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image as RGB. Grayscale (L, I;16), palette (P), RGBA/LA and CMYK are
    converted to RGB (CMYK through PIL's conversion, alpha dropped). A truncated or corrupt file is a
    :class:`CorruptImageError` naming it (PIL decodes lazily, so ``load()`` is forced here)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits
                array = np.asarray(image, dtype=np.float64)
                top = array.max() or 1.0
                image = Image.fromarray((array * (255.0 / top)).astype(np.uint8), "L")
            return image.convert("RGB")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise CorruptImageError(f"{path}: cannot decode the image ({type(err).__name__}: {err}); the file is corrupt, truncated or not an image") from None


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
                config = cls(int(data["input_size"][-1]), float(data.get("crop_pct", 0.875)), tuple(data["mean"]), tuple(data["std"]), str(data.get("interpolation", "bicubic")))
        if size is not None:
            config.size = int(size)
        if crop_pct is not None:
            config.crop_pct = float(crop_pct)
        return config

    def as_dict(self) -> Dict[str, Any]:
        return {"size": self.size, "crop_pct": self.crop_pct, "mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation}

    def geometric(self):
        """Resize + centre crop (PIL in, PIL out): what the model sees, before normalization."""
        from torchvision import transforms as T

        mode = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR, "nearest": T.InterpolationMode.NEAREST}.get(self.interpolation, T.InterpolationMode.BICUBIC)
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


# ---- records ---------------------------------------------------------------------------------------
@dataclass
class CaptionRecord:
    """One image and its reference captions. ``source`` names where the captions came from (file
    and line or entry) for error messages."""

    image: str
    captions: List[str]
    image_id: str = ""
    source: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)


def _karpathy_caption(sentence: Any) -> str:
    if isinstance(sentence, str):
        return sentence
    raw = sentence.get("raw")
    if raw is None:
        raw = " ".join(sentence.get("tokens", []))
    return raw


def karpathy_rows_to_records(rows: Iterable[Dict[str, Any]], images_root: Path, source: str) -> Dict[str, List[CaptionRecord]]:
    """Entries of Karpathy's ``dataset_*.json`` ``images`` list (or rows of a Hub mirror with the same
    columns: ``filepath``, ``filename``, ``split``, ``sentences``, ``cocoid``/``imgid``) → records per
    split. ``restval`` (COCO) joins ``train``, as in the standard 113,287-image training set."""
    splits: Dict[str, List[CaptionRecord]] = {s: [] for s in SPLITS}
    for n, row in enumerate(rows):
        try:
            split = {"restval": "train", "validation": "val"}.get(row["split"], row["split"])
            path = images_root / (row.get("filepath") or "") / row["filename"]
            sentences = row["sentences"]
        except (KeyError, TypeError) as err:
            raise ValueError(f"{source}: entry {n} lacks the key {err} (expected Karpathy's format: filepath, filename, split, sentences)") from None
        if split not in splits:
            raise ValueError(f"{source}: entry {n} has split {row['split']!r}; expected train, restval, val or test")
        image_id = str(row.get("cocoid", row.get("imgid", row["filename"])))
        splits[split].append(CaptionRecord(str(path), [_karpathy_caption(s) for s in sentences], image_id, f"{source} entry {n}"))
    return splits


def read_karpathy_json(path: Path, images_root: Path) -> Dict[str, List[CaptionRecord]]:
    """Karpathy's split file (``dataset_coco.json``, ``dataset_flickr8k.json``, ``dataset_flickr30k.json``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(data, dict) or "images" not in data:
        raise ValueError(f"{path}: expected Karpathy's split format, a JSON object with an 'images' list")
    return karpathy_rows_to_records(data["images"], Path(images_root), str(path))


def read_flickr_token(token_file: Path, split_files: Dict[str, Path], images_dir: Path) -> Dict[str, List[CaptionRecord]]:
    """Flickr8k's ``Flickr8k.token.txt`` (``<image>#<n>\\t<caption>`` per line) and the split lists
    (one image file name per line)."""
    captions: Dict[str, List[str]] = {}
    sources: Dict[str, str] = {}
    for lineno, line in enumerate(Path(token_file).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        if not tab or "#" not in key:
            raise ValueError(f"{token_file}:{lineno}: expected '<image>#<n>\\t<caption>', got {line[:80]!r}")
        name = key.rsplit("#", 1)[0]
        captions.setdefault(name, []).append(caption)
        sources.setdefault(name, f"{token_file}:{lineno}")
    splits: Dict[str, List[CaptionRecord]] = {}
    for split, list_file in split_files.items():
        records = []
        for lineno, line in enumerate(Path(list_file).read_text(encoding="utf-8").splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            if name not in captions:
                raise ValueError(f"{list_file}:{lineno}: image {name!r} has no captions in {token_file}")
            records.append(CaptionRecord(str(Path(images_dir) / name), captions[name], name, sources[name]))
        splits[split] = records
    return splits


def clean_records(records: List[CaptionRecord], check_files: bool, missing_images: str, split: str, where: str) -> Tuple[List[CaptionRecord], Dict[str, int]]:
    """Drop empty captions, images left without captions, and (``check_files``) images not on disk."""
    kept, counts, missing = [], {"empty_captions": 0, "images_without_captions": 0, "missing_images": 0}, []
    for record in records:
        captions = [c.strip() for c in record.captions if c and c.strip()]
        counts["empty_captions"] += len(record.captions) - len(captions)
        if not captions:
            counts["images_without_captions"] += 1
            continue
        if check_files and not os.path.isfile(record.image):
            counts["missing_images"] += 1
            missing.append(record.image)
            continue
        kept.append(CaptionRecord(record.image, captions, record.image_id, record.source, record.extra))
    if missing and missing_images == "error":
        raise MissingDataError(
            f"{len(missing)} of the {len(records)} images of the {split} split listed in {where} are not on disk, e.g. "
            f"{missing[:3]}; put them there, or pass missing_images='skip' to train on the images present"
        )
    return kept, counts


# ---- datasets ----------------------------------------------------------------------------------------
class CaptionDataset(Dataset):
    """Items of one split. ``pairs=True`` (training): one item per (image, caption); otherwise one per
    image with all its references (the loss uses the first). ``load(i)`` gives image ``i`` as a PIL
    image; once :attr:`features` is set (the cache), items carry ``features`` instead of ``image``."""

    def __init__(
        self,
        records: List[CaptionRecord],
        ids: List[List[List[int]]],
        load: Callable[[int], Image.Image],
        transform: Callable,
        pairs: bool,
        bad_images: str = "error",
        extra: Optional[Callable[[int, int], Dict[str, Any]]] = None,
    ) -> None:
        self.records, self.ids, self.load, self.transform = records, ids, load, transform
        self.bad_images, self.extra = bad_images, extra
        self.features: Optional[np.ndarray] = None
        self.valid: Optional[np.ndarray] = None
        self.index = [(i, j) for i, caps in enumerate(ids) for j in range(len(caps))] if pairs else [(i, 0) for i in range(len(ids))]
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.index)

    def image_tensor(self, i: int) -> Optional[Tensor]:
        try:
            return self.transform(self.load(i))
        except CorruptImageError as err:
            if self.bad_images == "skip":
                warnings.warn(f"skipping a bad image: {err}")
                return None
            raise CorruptImageError(f"{err}. Pass bad_images='skip' to the datamodule to skip such images") from None

    def __getitem__(self, k: int) -> Optional[Dict[str, Any]]:
        i, j = self.index[k]
        item: Dict[str, Any] = {"index": i, "ids": torch.tensor([BOS_ID, *self.ids[i][j], EOS_ID], dtype=torch.long)}
        if self.features is not None:
            if self.valid is not None and not self.valid[i]:
                return None
            item["features"] = torch.from_numpy(np.asarray(self.features[i], dtype=np.float32))
        else:
            image = self.image_tensor(i)
            if image is None:
                return None
            item["image"] = image
        if not self.pairs:
            item["references"] = list(self.records[i].captions)
        if self.extra is not None:
            item.update(self.extra(i, j))
        return item


class _ImagesOnly(Dataset):
    def __init__(self, dataset: CaptionDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset.records)

    def __getitem__(self, i: int):
        return i, self.dataset.image_tensor(i)


def _images_collate(items):
    index = torch.tensor([i for i, x in items if x is not None], dtype=torch.long)
    bad = [i for i, x in items if x is None]
    images = torch.stack([x for _, x in items if x is not None]) if len(index) else None
    return index, images, bad


def caption_collate(items: List[Optional[Dict[str, Any]]]) -> Dict[str, Any]:
    """Pad ``ids`` with ``<pad>`` = 0 (``lengths``: true lengths including ``<bos>``/``<eos>``), stack
    images or features, keep references as lists; boxes (ShapesCaptions) are padded to the most
    objects in the batch (``box_mask``), ``word_objects`` with -1. Items that are ``None`` (skipped bad
    images) are dropped."""
    items = [x for x in items if x is not None]
    if not items:
        return {}
    lengths = torch.tensor([len(x["ids"]) for x in items], dtype=torch.long)
    ids = torch.full((len(items), int(lengths.max())), PAD_ID, dtype=torch.long)
    for row, x in enumerate(items):
        ids[row, : len(x["ids"])] = x["ids"]
    batch: Dict[str, Any] = {"ids": ids, "lengths": lengths, "index": torch.tensor([x["index"] for x in items], dtype=torch.long)}
    if "features" in items[0]:
        batch["features"] = torch.stack([x["features"] for x in items])
    else:
        batch["images"] = torch.stack([x["image"] for x in items])
    if "references" in items[0]:
        batch["references"] = [x["references"] for x in items]
    if "boxes" in items[0]:
        most = max(len(x["boxes"]) for x in items)
        boxes = torch.zeros(len(items), most, 4)
        mask = torch.zeros(len(items), most, dtype=torch.bool)
        words = torch.full(ids.shape, -1, dtype=torch.long)
        for row, x in enumerate(items):
            boxes[row, : len(x["boxes"])] = x["boxes"]
            mask[row, : len(x["boxes"])] = True
            words[row, : len(x["word_objects"])] = x["word_objects"]
        batch.update(boxes=boxes, box_mask=mask, word_objects=words)
    return batch


# ---- the shared datamodule ------------------------------------------------------------------------------
class CaptionDataModule(L.LightningDataModule):
    """What every caption datamodule shares. A subclass provides :meth:`read_records` (per split), and
    may override :meth:`load_image` (default: the file at ``record.image``), :meth:`image_identity`
    (the feature-cache key of an image) and :meth:`item_extra`.

    After ``setup`` it exposes ``tokenizer_json``, ``image_config`` (dict), ``max_caption_len`` and
    ``skipped`` (counts of what was left out), and :meth:`attach_features` / :meth:`preview` for the
    model."""

    name = "captions"
    checks_files = True

    def __init__(
        self,
        encoder: Optional[str] = "resnet101",
        image_size: Optional[int] = None,
        crop_pct: Optional[float] = None,
        vocab_size: int = 10_000,
        min_frequency: int = 5,
        max_caption_len: int = 20,
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        missing_images: str = "skip",
        bad_images: str = "error",
        feature_cache_dir: Optional[str] = None,
        limit_images: Optional[Dict[str, int]] = None,
        seed: int = 0,
    ) -> None:
        """
        Args:
            encoder: the timm model name whose data config (input size, crop, mean/std) the images get;
                use the model's encoder name. ``None``: ImageNet statistics at 224 px.
            image_size, crop_pct: override the encoder's input size / centre-crop fraction.
            vocab_size, min_frequency: the word tokenizer (trained on training captions only);
                ``vocab_size`` counts the 4 special tokens.
            max_caption_len: longer captions are cut to this many words (then ``<eos>``).
            batch_size: per rank; ``eval_batch_size`` for validation/test (default = batch_size).
            missing_images: ``skip`` (count and warn) or ``error`` for images listed but absent.
            bad_images: ``error`` (the default: a corrupt image stops with its name) or ``skip``.
            feature_cache_dir: where cached encoder features go (default ``zoo_home()/cache/features``).
            limit_images: at most this many images per split, e.g. ``{"train": 1000}`` (quick runs).
            seed: for the order of training batches.
        """
        super().__init__()
        if missing_images not in ("skip", "error"):
            raise ValueError(f"missing_images must be 'skip' or 'error', got {missing_images!r}")
        if bad_images not in ("skip", "error"):
            raise ValueError(f"bad_images must be 'skip' or 'error', got {bad_images!r}")
        if max_caption_len < 1:
            raise ValueError(f"max_caption_len must be >= 1, got {max_caption_len}")
        self.save_hyperparameters()
        # Kept apart from self.hparams: under LightningCLI hparams hold only the subclass's own arguments.
        self.opts = SimpleNamespace(
            encoder=encoder, image_size=image_size, crop_pct=crop_pct, vocab_size=vocab_size, min_frequency=min_frequency,
            max_caption_len=max_caption_len, batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
            missing_images=missing_images, bad_images=bad_images, feature_cache_dir=feature_cache_dir,
            limit_images=limit_images, seed=seed,
        )
        self.tokenizer_json: Optional[str] = None
        self.records: Dict[str, List[CaptionRecord]] = {}
        self.datasets: Dict[str, CaptionDataset] = {}
        self.skipped: Dict[str, Dict[str, int]] = {}
        self._config = ImageConfig.for_encoder(encoder, image_size, crop_pct)

    # -- what a subclass provides ------------------------------------------------------------------------
    def read_records(self) -> Dict[str, List[CaptionRecord]]:
        raise NotImplementedError

    def describe_source(self) -> str:
        return type(self).__name__

    def load_image(self, split: str, i: int) -> Image.Image:
        return load_image(self.records[split][i].image)

    def image_identity(self, split: str, i: int) -> Any:
        path = self.records[split][i].image
        try:
            st = os.stat(path)
            return [path, st.st_size, st.st_mtime_ns]
        except OSError:
            return [path, None]

    def item_extra(self, split: str) -> Optional[Callable[[int, int], Dict[str, Any]]]:
        return None

    # -- the model reads these ------------------------------------------------------------------------------
    @property
    def image_config(self) -> Dict[str, Any]:
        return self._config.as_dict()

    @property
    def encoder_name(self) -> Optional[str]:
        return self.opts.encoder

    @property
    def max_caption_len(self) -> int:
        return self.opts.max_caption_len

    def preview(self, split: str, i: int) -> np.ndarray:
        """Image ``i`` of ``split`` as the model sees it (resized and cropped, not normalized), ``(S, S, 3)`` uint8."""
        return np.asarray(self._config.geometric()(self.load_image(split, i)))

    # -- building ---------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        self.read_records()  # checks the files are there (and downloads what can be downloaded)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        hp = self.opts
        raw = self.read_records()
        where = self.describe_source()
        for split in SPLITS:
            records = raw.get(split, [])
            kept, counts = clean_records(records, self.checks_files, hp.missing_images, split, where)
            if hp.limit_images and split in hp.limit_images:
                kept = kept[: int(hp.limit_images[split])]
            self.records[split], self.skipped[split] = kept, counts
            if counts["missing_images"]:
                warnings.warn(f"{split}: skipped {counts['missing_images']} of {len(records)} images listed in {where} that are not on disk")
            if counts["empty_captions"] or counts["images_without_captions"]:
                warnings.warn(f"{split}: skipped {counts['empty_captions']} empty captions ({counts['images_without_captions']} images left without a caption)")
        for split in ("train", "val"):
            if not self.records[split]:
                listed = len(raw.get(split, []))
                raise MissingDataError(
                    f"the {split} split of {where} has no usable images ({listed} listed, {self.skipped[split]}); "
                    "check the image folder and the split files"
                )
        train_captions = [c for r in self.records["train"] for c in r.captions]
        tokenizer = train_tokenizer(train_captions, "word", hp.vocab_size, hp.min_frequency)
        self.tokenizer_json = tokenizer.to_str()
        transform = self._config.transform()
        for split in SPLITS:
            records = self.records[split]
            if not records:
                continue
            flat = encode_texts(tokenizer, [c for r in records for c in r.captions])
            ids, at = [], 0
            for r in records:
                caps = [x[: hp.max_caption_len] for x in flat[at : at + len(r.captions)]]
                at += len(r.captions)
                ids.append(caps)
            # A caption with no words after tokenization (only punctuation): keep it out of training.
            if split == "train":
                for n, caps in enumerate(ids):
                    nonempty = [c for c in caps if c]
                    self.skipped[split]["empty_captions"] += len(caps) - len(nonempty)
                    ids[n] = nonempty or caps[:1]
            self.datasets[split] = CaptionDataset(
                records, ids, lambda i, s=split: self.load_image(s, i), transform, pairs=(split == "train"),
                bad_images=hp.bad_images, extra=self.item_extra(split),
            )

    # -- the feature cache -----------------------------------------------------------------------------------
    def feature_cache_path(self, split: str, encoder_key: str) -> Path:
        folder = Path(self.opts.feature_cache_dir).expanduser() if self.opts.feature_cache_dir else zoo_home() / "cache" / "features"
        identities = [self.image_identity(split, i) for i in range(len(self.records[split]))]
        payload = {"version": FEATURE_CACHE_VERSION, "images": identities, "encoder": encoder_key, "transform": self.image_config}
        key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]
        return folder / f"{self.name}-{split}-{key}.npy"

    @torch.no_grad()
    def attach_features(
        self,
        encode: Callable[[Tensor], Tensor],
        encoder_key: str,
        device: torch.device | str = "cpu",
        batch_size: Optional[int] = None,
        build: bool = True,
        log: Callable[[str], None] = print,
    ) -> Dict[str, Path]:
        """Serve cached encoder features instead of images from now on. ``encode`` maps a batch of
        normalized images ``(B, 3, S, S)`` on ``device`` to the feature grid ``(B, L, C)``; ``encoder_key``
        names the encoder and its weights (part of the cache key). Features missing from the cache are
        computed (``build=False``: only load, e.g. on DDP ranks other than 0 after rank 0 built them)."""
        self.setup()
        paths = {}
        for split, dataset in self.datasets.items():
            path = self.feature_cache_path(split, encoder_key)
            if not path.is_file():
                if not build:
                    raise FileNotFoundError(f"feature cache {path} is missing (rank 0 should have built it)")
                self._build_features(dataset, encode, path, device, batch_size or self.opts.eval_batch_size or self.opts.batch_size, split, log)
            features = np.load(path, mmap_mode="r")
            if features.shape[0] != len(dataset.records):
                raise ValueError(f"feature cache {path} holds {features.shape[0]} images, the {split} split {len(dataset.records)}; delete it")
            valid_path = path.with_suffix(".valid.npy")
            dataset.valid = np.load(valid_path) if valid_path.is_file() else None
            dataset.features = features
            paths[split] = path
        return paths

    def _build_features(self, dataset: CaptionDataset, encode, path: Path, device, batch_size: int, split: str, log) -> None:
        import time

        path.parent.mkdir(parents=True, exist_ok=True)
        loader = DataLoader(_ImagesOnly(dataset), batch_size=batch_size, shuffle=False, collate_fn=_images_collate, num_workers=self.opts.num_workers)
        n = len(dataset.records)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.npy", dir=path.parent)
        os.close(fd)
        out = None
        valid = np.ones(n, dtype=bool)
        start = time.time()
        log(f"caching encoder features of {n} {split} images to {path}")
        try:
            for index, images, bad in loader:
                valid[bad] = False
                if images is None:
                    continue
                grid = encode(images.to(device)).float().cpu().numpy()
                if out is None:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, *grid.shape[1:]))
                out[index.numpy()] = grid.astype(np.float16)
            if out is None:
                raise CorruptImageError(f"no image of the {split} split could be decoded")
            out.flush()
            del out
            os.replace(tmp, path)
            if not valid.all():
                np.save(path.with_suffix(".valid.npy"), valid)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        log(f"  {n} images in {time.time() - start:.1f} s")

    # -- loaders ----------------------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        if split not in self.datasets:
            raise MissingDataError(f"{self.describe_source()} has no {split} split")
        hp = self.opts
        batch_size = hp.batch_size if shuffle else (hp.eval_batch_size or hp.batch_size)
        generator = torch.Generator().manual_seed(hp.seed) if shuffle else None
        return DataLoader(
            self.datasets[split], batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=caption_collate,
            num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


# ---- COCO 2014 ----------------------------------------------------------------------------------------------
COCO_FILES = {
    "train2014": ("http://images.cocodataset.org/zips/train2014.zip", "13 GB", "82,783 images"),
    "val2014": ("http://images.cocodataset.org/zips/val2014.zip", "6.2 GB", "40,504 images"),
}
KARPATHY_JSON_HELP = (
    "Karpathy's split file dataset_coco.json (from caption_datasets.zip, about 36 MB; its original URL "
    "cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip is gone, copies circulate, e.g. "
    "on Kaggle as 'karpathy-splits'), or set karpathy_hub to a Hugging Face dataset mirror with the same "
    "columns (default yerevann/coco-karpathy, parquet; needs `pip install pyarrow`)"
)


def read_karpathy_hub(repo_id: str, images_root: Path, cache_dir: Optional[Path] = None) -> Dict[str, List[CaptionRecord]]:
    """The Karpathy split from a Hub dataset mirror whose rows carry Karpathy's columns
    (``filepath``, ``filename``, ``split`` or the parquet file's split, ``sentences``, ``cocoid``)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - a dependency of timm
        raise MissingDataError("reading the Karpathy split from the Hub needs huggingface_hub (pip install huggingface_hub)") from err
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDataError(
            f"the Karpathy split mirror {repo_id} is stored as parquet, which needs pyarrow: `pip install pyarrow`, "
            "or download dataset_coco.json and put it in the COCO root"
        ) from None
    try:
        folder = Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=["*.parquet", "*.json"], cache_dir=cache_dir))
    except Exception as err:
        raise MissingDataError(f"could not download the Karpathy split from the Hub dataset {repo_id} ({type(err).__name__}: {err}); {KARPATHY_JSON_HELP}") from None
    rows = []
    for file in sorted(folder.rglob("*.parquet")):
        split_from_name = next((s for s in ("restval", "train", "validation", "val", "test") if file.name.startswith(s) or f"/{s}" in str(file)), None)
        for row in pq.read_table(file).to_pylist():
            if "split" not in row or row["split"] is None:
                row["split"] = split_from_name
            rows.append(row)
    if not rows:
        raise MissingDataError(f"the Hub dataset {repo_id} holds no parquet rows; {KARPATHY_JSON_HELP}")
    return karpathy_rows_to_records(rows, images_root, f"hf://datasets/{repo_id}")


class COCOCaptionsDataModule(CaptionDataModule):
    """MS COCO 2014 captions on the Karpathy split (113,287 train incl. restval / 5,000 val / 5,000 test
    images, about 5 captions each).

    ``root`` must hold ``train2014/`` and ``val2014/`` (the images, from the official zips) and, unless
    ``karpathy_json`` names it elsewhere or ``karpathy_hub`` supplies it, ``dataset_coco.json``. The
    images (19 GB) are not downloaded automatically: a missing piece stops with what is missing, where
    it goes and the command that fetches it. All other arguments: :class:`CaptionDataModule`.
    """

    name = "coco"

    def __init__(self, root: str = "data/coco", karpathy_json: Optional[str] = None, karpathy_hub: Optional[str] = "yerevann/coco-karpathy", **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.karpathy_json = karpathy_json
        self.karpathy_hub = karpathy_hub

    def describe_source(self) -> str:
        return f"COCO 2014 at {self.root}"

    def missing(self) -> List[str]:
        """Human-readable lines for what is missing, empty when all is in place."""
        lines = []
        for folder, (url, size, count) in COCO_FILES.items():
            path = self.root / folder
            if not path.is_dir() or not any(path.iterdir()):
                lines.append(f"  - {path}/ ({count}): wget {url}  ({size})  &&  unzip {Path(url).name} -d {self.root}")
        json_path = Path(self.karpathy_json).expanduser() if self.karpathy_json else self.root / "dataset_coco.json"
        if not json_path.is_file():
            if not self.karpathy_hub:
                lines.append(f"  - {json_path}: {KARPATHY_JSON_HELP}")
            elif importlib.util.find_spec("pyarrow") is None:
                lines.append(f"  - {json_path}: {KARPATHY_JSON_HELP} [pyarrow is not installed here, so the Hub mirror {self.karpathy_hub} cannot be read]")
        return lines

    def read_records(self) -> Dict[str, List[CaptionRecord]]:
        lines = self.missing()
        if lines:
            raise MissingDataError(
                f"COCO 2014 captions are not (all) in {self.root.resolve()}. Missing:\n" + "\n".join(lines)
                + "\nPut them there (or pass --data.root DIR where they are), then run again. "
                "For a run without any download use recipes/caption_attn_shapes.yaml."
            )
        json_path = Path(self.karpathy_json).expanduser() if self.karpathy_json else self.root / "dataset_coco.json"
        if json_path.is_file():
            return read_karpathy_json(json_path, self.root)
        return read_karpathy_hub(self.karpathy_hub, self.root)


# ---- Flickr8k / Flickr30k ---------------------------------------------------------------------------------
FLICKR_IMAGE_DIRS = ("images", "Flicker8k_Dataset", "Flickr8k_Dataset", "Flickr8k_Dataset/Flicker8k_Dataset", "flickr30k-images", "flickr30k_images")
FLICKR_HELP = {
    "flickr8k": (
        "Flickr8k (about 1 GB of images + 2 MB of captions): e.g. "
        "wget https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_Dataset.zip "
        "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_text.zip, unzip both into the root; "
        "or Karpathy's dataset_flickr8k.json beside an images/ folder"
    ),
    "flickr30k": (
        "Flickr30k (about 4.4 GB of images, by request from the authors: shannon.cs.illinois.edu/DenotationGraph) "
        "as flickr30k-images/ plus Karpathy's dataset_flickr30k.json in the root"
    ),
}


class FlickrCaptionsDataModule(CaptionDataModule):
    """Flickr8k or Flickr30k. ``root`` holds the images (in ``images/``, ``Flicker8k_Dataset/``,
    ``flickr30k-images/`` or the root itself) and either Karpathy's ``dataset_flickr8k.json`` /
    ``dataset_flickr30k.json`` or (Flickr8k) the original ``Flickr8k.token.txt`` with
    ``Flickr_8k.{train,dev,test}Images.txt``. ``split_format``: ``auto`` (Karpathy's JSON when present),
    ``karpathy`` or ``token``. All other arguments: :class:`CaptionDataModule`."""

    def __init__(self, root: str = "data/flickr8k", dataset: str = "flickr8k", split_format: str = "auto", **kwargs) -> None:
        if dataset not in FLICKR_HELP:
            raise ValueError(f"dataset must be one of {sorted(FLICKR_HELP)}, got {dataset!r}")
        if split_format not in ("auto", "karpathy", "token"):
            raise ValueError(f"split_format must be auto, karpathy or token, got {split_format!r}")
        super().__init__(**kwargs)
        self.root, self.dataset, self.split_format = Path(root).expanduser(), dataset, split_format
        self.name = dataset

    def describe_source(self) -> str:
        return f"{self.dataset} at {self.root}"

    def images_dir(self) -> Path:
        for name in FLICKR_IMAGE_DIRS:
            if (self.root / name).is_dir():
                return self.root / name
        return self.root

    def read_records(self) -> Dict[str, List[CaptionRecord]]:
        karpathy = self.root / f"dataset_{self.dataset}.json"
        token = self.root / "Flickr8k.token.txt"
        lists = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt", "test": "Flickr_8k.testImages.txt"}
        use_karpathy = self.split_format == "karpathy" or (self.split_format == "auto" and karpathy.is_file())
        if use_karpathy:
            if not karpathy.is_file():
                raise MissingDataError(f"{karpathy} is missing. {FLICKR_HELP[self.dataset]}")
            return read_karpathy_json(karpathy, self.images_dir())
        if self.dataset != "flickr8k":
            raise MissingDataError(f"{karpathy} is missing (Flickr30k has no official split lists). {FLICKR_HELP[self.dataset]}")
        missing = [p for p in [token, *(self.root / f for f in lists.values())] if not p.is_file()]
        if missing:
            raise MissingDataError(
                f"Flickr8k captions are not (all) in {self.root.resolve()}: missing {', '.join(str(p) for p in missing)}. "
                f"{FLICKR_HELP['flickr8k']}"
            )
        return read_flickr_token(token, {s: self.root / f for s, f in lists.items()}, self.images_dir())
