"""Text datamodules: the base every tokenized-text datamodule shares, and text classification.

- :class:`TextDataModule`: what IMDB, AG News and Multi30k share: where the data is (``root``), the
  tokenizer settings, the on-disk cache of the tokenized splits (:func:`datamodules.download.cached`,
  filled once by ``prepare_data``) and batches bucketed by length (:func:`~datamodules.loaders.
  length_bucketed_loader`; ``predict`` serves the test split in file order). A subclass says where
  its files are (:meth:`~TextDataModule.input_files`) and how to read and tokenize them
  (:meth:`~TextDataModule._build`).
- :class:`TextClassificationDataModule` (IMDB, AG News): a seeded stratified validation split carved
  out of train, a tokenizer (:mod:`datamodules.tokenizers`) trained on the remaining training texts
  only, every split encoded and stored flat (:class:`EncodedTexts`), texts longer than ``max_tokens``
  cut by the ``truncation`` policy. A batch is ``{"ids": (B, T) long, "lengths": (B,), "labels": (B,),
  "index": (B,), "source": [file:line or archive member]}``, padded with ``<pad>`` = 0; test batches
  also carry ``"text"`` (the raw text, kept for the test split only), so a prediction names its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .download import DataFormatError, cached
from .loaders import SplitLoaders, length_bucketed_loader, pad_collate
from .tokenizers import SPECIAL_TOKENS, TOKENIZER_KINDS, TRUNCATION_POLICIES, encode_texts, pack, train_tokenizer, truncate

__all__ = ["EncodedTexts", "RawSplit", "TextClassificationDataModule", "TextDataModule", "stratified_split"]

#: The split whose raw texts are kept in the cache (predictions show them).
TEXT_SPLIT = "test"


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """``(keep, held_out)`` index lists: ``round(fraction * count)`` of each label held out, chosen by a
    seeded permutation; both lists in ascending order."""
    labels = torch.as_tensor(labels)
    generator = torch.Generator().manual_seed(seed)
    held: List[int] = []
    for label in sorted(set(labels.tolist())):
        idx = (labels == label).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        held.extend(idx[: round(fraction * len(idx))].tolist())
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


# ---- datasets -------------------------------------------------------------------------------------
class EncodedTexts(Dataset):
    """Tokenized texts stored flat; item ``i`` is ``{"ids": (n,) long, "label": int, "index": i}`` with
    ``n`` at most ``max_tokens`` (cut by ``truncation``), plus ``source`` / ``text`` when given."""

    def __init__(
        self,
        ids: Tensor,
        offsets: Tensor,
        labels: Tensor,
        max_tokens: Optional[int] = None,
        truncation: str = "head_tail",
        sources: Optional[List[str]] = None,
        texts: Optional[List[str]] = None,
    ) -> None:
        if truncation not in TRUNCATION_POLICIES:
            raise ValueError(f"unknown truncation policy {truncation!r}: expected one of {TRUNCATION_POLICIES}")
        self.ids, self.offsets, self.labels = ids, offsets, labels
        self.max_tokens, self.truncation = max_tokens, truncation
        self.sources, self.texts = sources, texts

    @classmethod
    def from_split(cls, split: Dict[str, Any], **kwargs) -> "EncodedTexts":
        return cls(
            split["ids"], split["offsets"], split["labels"], sources=split.get("sources"), texts=split.get("texts"), **kwargs
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def full_lengths(self) -> Tensor:
        return self.offsets.diff()

    @property
    def lengths(self) -> Tensor:
        """The lengths the model sees (after truncation)."""
        full = self.full_lengths
        return full if self.max_tokens is None else full.clamp(max=self.max_tokens)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        ids = self.ids[self.offsets[i] : self.offsets[i + 1]].long()
        item = {"ids": truncate(ids, self.max_tokens, self.truncation), "label": int(self.labels[i]), "index": i}
        if self.sources is not None:
            item["source"] = self.sources[i]
        if self.texts is not None:
            item["text"] = self.texts[i]
        return item


@dataclass
class RawSplit:
    """Texts as read from the files: ``sources[i]`` says where text ``i`` came from (``file:line``)."""

    texts: List[str]
    labels: List[int]
    sources: List[str]

    def subset(self, idx: Sequence[int]) -> "RawSplit":
        return RawSplit([self.texts[i] for i in idx], [self.labels[i] for i in idx], [self.sources[i] for i in idx])


# ---- the base -------------------------------------------------------------------------------------
class TextDataModule(SplitLoaders, L.LightningDataModule):
    """What every tokenized-text datamodule shares (see the module docstring). Subclasses declare only
    their own arguments and the defaults they change; the rest pass through ``**kwargs``."""

    name = "text"
    collate_fn: Callable = staticmethod(pad_collate)
    eval_batch_factor = 2

    def __init__(
        self,
        root: Optional[str] = None,
        tokenizer: str = "word",
        vocab_size: int = 30_000,
        min_frequency: int = 2,
        lowercase: bool = True,
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        bucket: bool = True,
        bucket_batches: int = 50,
        seed: int = 0,
        cache_dir: Optional[str] = None,
        num_workers: int = 0,
    ) -> None:
        """
        Args:
            root: where the data is (see the subclass); ``None`` = download from the canonical source.
            tokenizer: ``word`` (word-level vocabulary) or ``bpe`` (byte-pair merges).
            vocab_size, min_frequency: tokenizer limits (``vocab_size`` includes the 4 special tokens).
            lowercase: lowercase before tokenizing.
            batch_size: per rank; ``eval_batch_size`` for validation/test/predict (default 2x).
            bucket: batch texts of similar length (:class:`~datamodules.loaders.BucketBatchSampler`);
                ``False`` = random batches.
            bucket_batches: how many batches' worth of texts are sorted together when bucketing.
            seed: for the validation split and the batch order.
            cache_dir: where tokenized datasets are cached (default ``zoo_home()/"cache"/"text"``).
            num_workers: dataloader worker processes.
        """
        super().__init__()
        if tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer must be one of {TOKENIZER_KINDS}, got {tokenizer!r}")
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
        # Called here only: Lightning collects the arguments of every __init__ up the subclass chain.
        self.save_hyperparameters()
        self.datasets: Dict[str, Dataset] = {}

    # -- what a subclass provides -------------------------------------------------------------------
    def input_files(self) -> Any:
        """The files the data is read from (downloaded first if needed), a list or a dict of paths:
        their identity keys the cache."""
        raise NotImplementedError

    @property
    def settings(self) -> Dict[str, Any]:
        """Everything besides the files that changes the cached result (part of the cache key)."""
        raise NotImplementedError

    def _build(self) -> Dict[str, Any]:
        """Read ``self._files``, train the tokenizer(s), encode every split: the cached result."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------
    def load(self) -> Dict[str, Any]:
        """Read + tokenize, or load the cached result."""
        self._files = self.input_files()
        files = list(self._files.values()) if isinstance(self._files, dict) else list(self._files)
        return cached(self.name, files, self.settings, self._build, self.hparams.cache_dir)

    def prepare_data(self) -> None:
        self.load()  # on one process per node: downloads and fills the cache; other ranks then read it

    def make_loader(self, dataset: Dataset, mode: str) -> DataLoader:
        """Bucketed by length for training and evaluation; ``predict`` in file order (not bucketed)."""
        if mode == "predict":
            return self.plain_loader(dataset, mode)
        return length_bucketed_loader(self, dataset, self.collate_fn, shuffle=mode == "train")


class TextClassificationDataModule(TextDataModule):
    """Shared by :class:`~datamodules.imdb.IMDBDataModule` and :class:`~datamodules.ag_news.AGNewsDataModule`.

    A subclass says where its files are (:meth:`input_files`, downloading them if needed) and how to read
    them (:meth:`read`: ``{"train": RawSplit, "test": RawSplit}`` and the label names). This class
    carves a seeded stratified validation split out of train, trains the tokenizer on the remaining
    training texts only, encodes every split, caches the result and serves bucketed, padded batches.
    After ``setup`` it exposes ``tokenizer_json``, ``label_names``, ``max_tokens`` and ``truncation``
    for the model.
    """

    def __init__(
        self,
        max_tokens: Optional[int] = 400,
        truncation: str = "head_tail",
        val_fraction: float = 0.1,
        encoding_errors: str = "strict",
        **kwargs: Any,
    ) -> None:
        """
        Args:
            max_tokens, truncation: longer texts are cut to ``max_tokens`` tokens by the policy
                ``head`` | ``tail`` | ``head_tail`` (see :func:`~datamodules.tokenizers.truncate`);
                ``None`` = keep everything.
            val_fraction: share of each training class held out for validation (seeded, stratified).
            encoding_errors: ``strict`` (invalid UTF-8 is an error naming the file and line) or
                ``replace`` (invalid bytes become U+FFFD).
            **kwargs: the arguments of :class:`TextDataModule` (root, tokenizer, vocab_size, ...).
        """
        if truncation not in TRUNCATION_POLICIES:
            raise ValueError(f"truncation must be one of {TRUNCATION_POLICIES}, got {truncation!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        if encoding_errors not in ("strict", "replace"):
            raise ValueError(f"encoding_errors must be 'strict' or 'replace', got {encoding_errors!r}")
        super().__init__(**kwargs)
        self.tokenizer_json: Optional[str] = None
        self.label_names: Optional[List[str]] = None

    # -- what a subclass provides -------------------------------------------------------------------
    def input_files(self) -> List[Path]:
        raise NotImplementedError

    def read(self, files: List[Path]) -> Tuple[Dict[str, RawSplit], List[str]]:
        """``({"train": RawSplit, "test": RawSplit}, label_names)``."""
        raise NotImplementedError

    def read_settings(self) -> Dict[str, Any]:
        """Subclass settings that change what :meth:`read` returns (part of the cache key)."""
        return {}

    # -- decoding helper for subclasses -------------------------------------------------------------
    def decode(self, data: bytes, source: str) -> str:
        try:
            return data.decode("utf-8", errors=self.hparams.encoding_errors)
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise DataFormatError(
                f"{source}:{line}: invalid UTF-8 (byte {e.start}: {e.reason}); fix the file or pass "
                "encoding_errors='replace' to read invalid bytes as U+FFFD"
            ) from None

    # -- building -----------------------------------------------------------------------------------
    @property
    def settings(self) -> Dict[str, Any]:
        hp = self.hparams
        return {
            "module": type(self).__name__,
            "tokenizer": hp.tokenizer,
            "vocab_size": hp.vocab_size,
            "min_frequency": hp.min_frequency,
            "lowercase": hp.lowercase,
            "val_fraction": hp.val_fraction,
            "seed": hp.seed,
            "encoding_errors": hp.encoding_errors,
            **self.read_settings(),
        }

    def _build(self) -> Dict[str, Any]:
        splits, label_names = self.read(self._files)
        train = splits["train"]
        keep, held = stratified_split(train.labels, self.hparams.val_fraction, self.hparams.seed)
        splits = {"train": train.subset(keep), "val": train.subset(held), "test": splits["test"]}
        hp = self.hparams
        tokenizer = train_tokenizer(splits["train"].texts, hp.tokenizer, hp.vocab_size, hp.min_frequency, hp.lowercase)
        encoded = {}
        for name, split in splits.items():
            ids = encode_texts(tokenizer, split.texts)
            for i, seq in enumerate(ids):
                if not seq:
                    raise DataFormatError(
                        f"{split.sources[i]}: no tokens left after normalization (text {split.texts[i][:80]!r})"
                    )
            flat, offsets = pack(ids)
            encoded[name] = {
                "ids": flat,
                "offsets": offsets,
                "labels": torch.tensor(split.labels, dtype=torch.long),
                "sources": list(split.sources),
            }
            if name == TEXT_SPLIT:
                encoded[name]["texts"] = list(split.texts)
        return {"tokenizer_json": tokenizer.to_str(), "label_names": list(label_names), "splits": encoded}

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        data = self.load()
        self.tokenizer_json, self.label_names = data["tokenizer_json"], list(data["label_names"])
        kw = dict(max_tokens=self.hparams.max_tokens, truncation=self.hparams.truncation)
        self.datasets = {name: EncodedTexts.from_split(split, **kw) for name, split in data["splits"].items()}

    def test_examples(self, limit: Optional[int] = None) -> Tuple[List[str], List[int]]:
        """The raw test texts and their label indices in stored order (``limit``: the first ``limit`` of
        each label): what a classifier is scored on (``zoo models --evaluate``)."""
        split = self.load()["splits"][TEXT_SPLIT]
        texts, labels = list(split["texts"]), [int(y) for y in split["labels"]]
        if limit is not None:
            keep = [i for label in sorted(set(labels)) for i in [i for i, y in enumerate(labels) if y == label][:limit]]
            texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        return texts, labels

    @property
    def max_tokens(self) -> Optional[int]:
        return self.hparams.max_tokens

    @property
    def truncation(self) -> str:
        return self.hparams.truncation

    @property
    def num_classes(self) -> int:
        if self.label_names is None:
            self.setup()
        return len(self.label_names)
