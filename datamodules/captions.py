"""What every caption datamodule shares (COCO, Flickr in :mod:`datamodules.coco_captions`,
:class:`datamodules.shapes_captions.ShapesCaptions`): records, datasets, batches, the feature cache.

The flow::

    records (image + its reference captions, per split) ── missing images / empty captions skipped,
        │                                                   with counts
        ▼
    word tokenizer trained on the *train* captions only (datamodules.tokenizers: <pad>=0 <unk> <bos> <eos>)
        ▼
    images → timm's eval transform for the encoder (resize, centre crop, normalize)
        │     or, with a frozen encoder, features computed once and cached on disk
        ▼
    batches {"images" (B,3,S,S) | "features" (B,L,C), "ids" (B,T), "lengths", "index",
             "image" (list of str: path or id), "references" (list of lists of str, validation/test)}

Training iterates over (image, caption) pairs; validation and test over images, the loss on the first
reference and BLEU/CIDEr-D against all of them; ``predict`` over the test images in stored order.

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
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .download import MissingDataError, zoo_home
from .image_data import ImageDataModule
from .images import CorruptImageError
from .tokenizers import BOS_ID, EOS_ID, PAD_ID, encode_texts, train_tokenizer

__all__ = ["CaptionDataModule", "CaptionDataset", "CaptionRecord", "caption_collate", "clean_records"]

FEATURE_CACHE_VERSION = 1
SPLITS = ("train", "val", "test")


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


def clean_records(
    records: List[CaptionRecord], check_files: bool, missing_images: str, split: str, where: str
) -> Tuple[List[CaptionRecord], Dict[str, int]]:
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
        self.index = (
            [(i, j) for i, caps in enumerate(ids) for j in range(len(caps))] if pairs else [(i, 0) for i in range(len(ids))]
        )
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
        item: Dict[str, Any] = {
            "index": i,
            "image_name": self.records[i].image,
            "ids": torch.tensor([BOS_ID, *self.ids[i][j], EOS_ID], dtype=torch.long),
        }
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
    images or features, keep references and ``image`` (each image's path or id) as lists; boxes
    (ShapesCaptions) are padded to the most objects in the batch (``box_mask``), ``word_objects``
    with -1. Items that are ``None`` (skipped bad images) are dropped."""
    items = [x for x in items if x is not None]
    if not items:
        return {}
    lengths = torch.tensor([len(x["ids"]) for x in items], dtype=torch.long)
    ids = torch.full((len(items), int(lengths.max())), PAD_ID, dtype=torch.long)
    for row, x in enumerate(items):
        ids[row, : len(x["ids"])] = x["ids"]
    batch: Dict[str, Any] = {
        "ids": ids,
        "lengths": lengths,
        "index": torch.tensor([x["index"] for x in items], dtype=torch.long),
        "image": [x["image_name"] for x in items],
    }
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
class CaptionDataModule(ImageDataModule):
    """What every caption datamodule shares. A subclass provides :meth:`read_records` (per split), and
    may override :meth:`load_image` (default: the file at ``record.image``), :meth:`image_identity`
    (the feature-cache key of an image) and :meth:`item_extra`.

    After ``setup`` it exposes ``tokenizer_json``, ``image_config`` (dict), ``max_caption_len`` and
    ``skipped`` (counts of what was left out), and :meth:`attach_features` / :meth:`preview` for the
    model."""

    name = "captions"
    checks_files = True
    collate_fn = staticmethod(caption_collate)

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
            batch_size: per rank; ``eval_batch_size`` for validation/test/predict (default = batch_size).
            missing_images: ``skip`` (count and warn) or ``error`` for images listed but absent.
            bad_images: ``error`` (the default: a corrupt image stops with its name) or ``skip``.
            feature_cache_dir: where cached encoder features go (default ``zoo_home()/cache/features``).
            limit_images: at most this many images per split, e.g. ``{"train": 1000}`` (quick runs).
            seed: for the order of training batches.
        """
        super().__init__(encoder, image_size, crop_pct)
        if missing_images not in ("skip", "error"):
            raise ValueError(f"missing_images must be 'skip' or 'error', got {missing_images!r}")
        if bad_images not in ("skip", "error"):
            raise ValueError(f"bad_images must be 'skip' or 'error', got {bad_images!r}")
        if max_caption_len < 1:
            raise ValueError(f"max_caption_len must be >= 1, got {max_caption_len}")
        self.save_hyperparameters()
        # Kept apart from self.hparams: under LightningCLI hparams hold only the subclass's own arguments.
        self.opts = SimpleNamespace(
            encoder=encoder,
            image_size=image_size,
            crop_pct=crop_pct,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            max_caption_len=max_caption_len,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            missing_images=missing_images,
            bad_images=bad_images,
            feature_cache_dir=feature_cache_dir,
            limit_images=limit_images,
            seed=seed,
        )
        self.tokenizer_json: Optional[str] = None
        self.records: Dict[str, List[CaptionRecord]] = {}
        self.datasets: Dict[str, CaptionDataset] = {}
        self.skipped: Dict[str, Dict[str, int]] = {}

    # -- what a subclass provides (and read_records, describe_source, load_image: ImageDataModule) ----------
    def image_identity(self, split: str, i: int) -> Any:
        path = self.records[split][i].image
        try:
            st = os.stat(path)
            return [path, st.st_size, st.st_mtime_ns]
        except OSError:
            return [path, None]

    def item_extra(self, split: str) -> Optional[Callable[[int, int], Dict[str, Any]]]:
        return None

    # -- the model reads these (and image_config, encoder_name, preview: ImageDataModule) ------------------
    @property
    def max_caption_len(self) -> int:
        return self.opts.max_caption_len

    # -- building ---------------------------------------------------------------------------------------------
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
                warnings.warn(
                    f"{split}: skipped {counts['missing_images']} of {len(records)} images listed in {where} that are not on disk"
                )
            if counts["empty_captions"] or counts["images_without_captions"]:
                warnings.warn(
                    f"{split}: skipped {counts['empty_captions']} empty captions ({counts['images_without_captions']} images left without a caption)"
                )
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
                records,
                ids,
                lambda i, s=split: self.load_image(s, i),
                transform,
                pairs=(split == "train"),
                bad_images=hp.bad_images,
                extra=self.item_extra(split),
            )

    # -- the feature cache -----------------------------------------------------------------------------------
    def feature_cache_path(self, split: str, encoder_key: str) -> Path:
        folder = (
            Path(self.opts.feature_cache_dir).expanduser() if self.opts.feature_cache_dir else zoo_home() / "cache" / "features"
        )
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
                self._build_features(
                    dataset, encode, path, device, batch_size or self.opts.eval_batch_size or self.opts.batch_size, split, log
                )
            features = np.load(path, mmap_mode="r")
            if features.shape[0] != len(dataset.records):
                raise ValueError(
                    f"feature cache {path} holds {features.shape[0]} images, the {split} split {len(dataset.records)}; delete it"
                )
            valid_path = path.with_suffix(".valid.npy")
            dataset.valid = np.load(valid_path) if valid_path.is_file() else None
            dataset.features = features
            paths[split] = path
        return paths

    def _build_features(self, dataset: CaptionDataset, encode, path: Path, device, batch_size: int, split: str, log) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        loader = DataLoader(
            _ImagesOnly(dataset),
            batch_size=batch_size,
            shuffle=False,
            collate_fn=_images_collate,
            num_workers=self.opts.num_workers,
        )
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
