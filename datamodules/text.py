"""Text → batches for the many-to-one tasks: tokenizer, truncation, on-disk cache, collate, bucketing.

The pieces, in the order the data meets them:

- :func:`build_tokenizer` / :func:`train_tokenizer`: a Hugging Face ``tokenizers`` tokenizer, word-level
  (default) or BPE, trained on the training split only. Normalization: NFKC, HTML tags such as
  ``<br />`` replaced by a space, lowercase. Special tokens ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2,
  ``<eos>`` = 3. It serializes to one JSON string (``tokenizer.to_str()``), which the model keeps in its
  hyperparameters so a checkpoint can classify raw text by itself.
- :func:`truncate`: the truncation policy applied to every sequence longer than ``max_tokens``
  (``head_tail`` by default: the first quarter of the budget from the start of the text, the rest from
  its end; reviews tend to state their verdict at the end).
- :func:`cached`: a tokenized dataset is stored once under ``zoo_home()/"cache"/"text"`` keyed by a hash
  of the input files' identity (path, size, mtime) and every setting that changes the result, written
  atomically (temp file + ``os.replace``), so a second run skips reading and tokenizing.
- :class:`EncodedTexts` + :func:`pad_collate`: ids stored flat (one int32 tensor + offsets); a batch is
  ``{"ids": (B, T) long, "lengths": (B,) long, "labels": (B,) long}``, padded with ``<pad>`` = 0.
- :class:`BucketBatchSampler`: batches of similar length (little padding), shuffled per epoch with a
  seed, sharded across DDP ranks by the sampler itself (see its docstring for how Lightning treats it).
- :class:`TextClassificationDataModule`: the shared datamodule the IMDB and AG News ones specialize.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import lightning as L
import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from .download import zoo_home

__all__ = [
    "BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "SPECIAL_TOKENS", "TRUNCATION_POLICIES",
    "BucketBatchSampler", "BucketedLoaders", "DataFormatError", "EncodedTexts", "TextClassificationDataModule",
    "build_tokenizer", "cached", "fit_tokenizer", "datamodule_world", "length_bucketed_loader", "encode_texts", "file_identity", "load_tokenizer", "pad_collate",
    "padding_fraction", "stratified_split", "train_tokenizer", "truncate",
]

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>"]
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
TOKENIZER_KINDS = ("word", "bpe")
TRUNCATION_POLICIES = ("head", "tail", "head_tail")
#: Bump when the cached format or the way texts are read/encoded changes: old cache entries are ignored.
CACHE_VERSION = 1

# An HTML tag such as <br />, <br>, <i>, </i>, <p class=x>. Deliberately narrow so that "a < b > c" or
# "<3" survive: a tag starts with a letter right after "<" (or "</") and holds no other "<" or ">".
HTML_TAG = r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>"


class DataFormatError(ValueError):
    """A data file does not look as expected; the message names the file (and line) at fault."""


# ---- tokenizer ------------------------------------------------------------------------------------
def build_tokenizer(kind: str = "word", lowercase: bool = True) -> Tokenizer:
    """An untrained tokenizer: NFKC → HTML tags to spaces → (lowercase) → split on whitespace and
    punctuation (``\\w+|[^\\w\\s]+``) → word-level vocabulary or BPE merges."""
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}: expected one of {TOKENIZER_KINDS}")
    model = models.WordLevel(unk_token="<unk>") if kind == "word" else models.BPE(unk_token="<unk>")
    tokenizer = Tokenizer(model)
    steps = [normalizers.NFKC(), normalizers.Replace(Regex(HTML_TAG), " ")]
    if lowercase:
        steps.append(normalizers.Lowercase())
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def train_tokenizer(
    texts: Sequence[str],
    kind: str = "word",
    vocab_size: int = 30_000,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> Tokenizer:
    """Train on ``texts`` (the training split only). ``vocab_size`` counts the 4 special tokens; words
    (word-level) or merges (BPE) seen fewer than ``min_frequency`` times are left out."""
    return fit_tokenizer(build_tokenizer(kind, lowercase), texts, vocab_size, min_frequency)


def fit_tokenizer(tokenizer: Tokenizer, texts: Sequence[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    """Train an untrained word-level or BPE ``tokenizer`` on ``texts``, in place; the special tokens
    become ids 0-3 and ``vocab_size`` counts them."""
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    common = dict(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False)
    is_bpe = isinstance(tokenizer.model, models.BPE)
    trainer = trainers.BpeTrainer(**common) if is_bpe else trainers.WordLevelTrainer(**common)
    tokenizer.train_from_iterator(texts, trainer, length=len(texts))
    if [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise AssertionError(f"special tokens {SPECIAL_TOKENS} must be ids 0-3")
    return tokenizer


def load_tokenizer(tokenizer_json: str) -> Tokenizer:
    """The tokenizer back from its JSON string (as kept in a model's hyperparameters)."""
    return Tokenizer.from_str(tokenizer_json)


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> List[List[int]]:
    """Token ids of every text (no special tokens added, no truncation)."""
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # _fast: no offsets
    return [e.ids for e in encode(list(texts), add_special_tokens=False)]


def truncate(ids: Tensor, max_tokens: Optional[int], policy: str = "head_tail") -> Tensor:
    """Cut ``ids`` to at most ``max_tokens``: ``head`` keeps the start, ``tail`` the end, ``head_tail``
    the first ``max_tokens // 4`` tokens and the last ``max_tokens - max_tokens // 4`` (Sun et al. 2019
    found head+tail best for long reviews). ``None`` = no limit."""
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    if policy == "head":
        return ids[:max_tokens]
    if policy == "tail":
        return ids[len(ids) - max_tokens :]
    if policy == "head_tail":
        head = max_tokens // 4
        return torch.cat([ids[:head], ids[len(ids) - (max_tokens - head) :]])
    raise ValueError(f"unknown truncation policy {policy!r}: expected one of {TRUNCATION_POLICIES}")


# ---- the on-disk cache ----------------------------------------------------------------------------
def file_identity(path: Path) -> Tuple[str, int, int]:
    """``(absolute path, size, mtime_ns)``: changes whenever the file is replaced or edited."""
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


def cache_key(files: Sequence[Path], settings: Dict) -> str:
    payload = {"version": CACHE_VERSION, "files": [file_identity(f) for f in files], "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached(name: str, files: Sequence[Path], settings: Dict, build: Callable[[], Dict], cache_dir: Optional[Path] = None) -> Dict:
    """``build()`` once per (input files, settings); later calls load ``<cache_dir>/<name>-<key>.pt``.

    The result must hold only tensors, strings, numbers, lists and dicts: it is loaded with
    ``torch.load(weights_only=True)``, which never unpickles code. It is written to a temp file in the
    same folder and renamed into place, so an interrupted run never leaves a half-written entry; an
    unreadable entry is rebuilt."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else zoo_home() / "cache" / "text"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{cache_key(files, settings)}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception as err:  # truncated by a full disk, an older torch, ...: rebuild it
            warnings.warn(f"ignoring unreadable cache entry {path} ({type(err).__name__}: {err}); rebuilding it")
    data = build()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return data


# ---- datasets and batches -------------------------------------------------------------------------
def pack(ids: Sequence[Sequence[int]]) -> Tuple[Tensor, Tensor]:
    """Ragged id lists → ``(flat int32 ids, int64 offsets of length n + 1)``."""
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
    offsets = torch.zeros(len(ids) + 1, dtype=torch.long)
    torch.cumsum(lengths, 0, out=offsets[1:])
    flat = torch.tensor([i for x in ids for i in x], dtype=torch.int32) if len(ids) else torch.zeros(0, dtype=torch.int32)
    return flat, offsets


class EncodedTexts(Dataset):
    """Tokenized texts stored flat; item ``i`` is ``{"ids": (n,) long, "label": int}`` with ``n`` at most
    ``max_tokens`` (cut by ``truncation``)."""

    def __init__(self, ids: Tensor, offsets: Tensor, labels: Tensor, max_tokens: Optional[int] = None, truncation: str = "head_tail") -> None:
        if truncation not in TRUNCATION_POLICIES:
            raise ValueError(f"unknown truncation policy {truncation!r}: expected one of {TRUNCATION_POLICIES}")
        self.ids, self.offsets, self.labels = ids, offsets, labels
        self.max_tokens, self.truncation = max_tokens, truncation

    @classmethod
    def from_split(cls, split: Dict[str, Tensor], **kwargs) -> "EncodedTexts":
        return cls(split["ids"], split["offsets"], split["labels"], **kwargs)

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

    def __getitem__(self, i: int) -> Dict:
        ids = self.ids[self.offsets[i] : self.offsets[i + 1]].long()
        return {"ids": truncate(ids, self.max_tokens, self.truncation), "label": int(self.labels[i])}


def pad_collate(items: List[Dict]) -> Dict[str, Tensor]:
    """Pad to the longest sequence of the batch with ``<pad>`` = 0; ``lengths`` are the true lengths."""
    lengths = torch.tensor([len(x["ids"]) for x in items], dtype=torch.long)
    ids = torch.full((len(items), int(lengths.max())), PAD_ID, dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item["ids"])] = item["ids"]
    batch = {"ids": ids, "lengths": lengths}
    if "label" in items[0]:
        batch["labels"] = torch.tensor([x["label"] for x in items], dtype=torch.long)
    return batch


class _Epoch(Sampler):
    """The ``sampler`` of a :class:`BucketBatchSampler` when none is given: holds the epoch, because
    Lightning calls ``set_epoch`` on ``batch_sampler.sampler`` (not on the batch sampler itself)."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))


class BucketBatchSampler(BatchSampler):
    """Batches of similar lengths, deterministic per (seed, epoch), sharded across DDP ranks.

    Training (``shuffle=True``): the indices are shuffled, cut into chunks of ``bucket_batches`` batches,
    each chunk sorted by length and cut into batches, and the batches shuffled. Evaluation
    (``shuffle=False``): all indices sorted by length (longest first), cut into batches. Under DDP the
    batches are dealt round-robin, rank ``r`` taking batches ``r, r + R, ...``: the shards are disjoint.
    With ``even=True`` (the default when shuffling) the list is first cut to a multiple of ``R`` batches
    so every rank runs the same number of steps (DDP needs that for its gradient all-reduce); at most
    ``R - 1`` batches are skipped per epoch, different ones each epoch.

    How Lightning 2.6 treats it: with ``use_distributed_sampler=True`` (the default) and a DDP strategy,
    Lightning rebuilds a dataloader's batch sampler with ``sampler=DistributedSampler(...)``, reusing the
    arguments this sampler was created with (they are recorded when it is created inside a
    ``*_dataloader`` hook). A :class:`~torch.utils.data.DistributedSampler` (or any sampler with
    ``num_replicas`` and ``rank``) given as ``sampler`` is therefore read for the rank and world size and
    the epoch, and its own index order is ignored. With ``use_distributed_sampler=False`` nothing is
    replaced and the ``num_replicas``/``rank`` given here (the datamodule reads them from the trainer)
    are used. Either way the batches are the same.
    """

    def __init__(
        self,
        sampler: Optional[Sampler] = None,
        batch_size: int = 32,
        drop_last: bool = False,
        *,
        lengths: Sequence[int],
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        bucket_batches: int = 50,
        even: Optional[bool] = None,
    ) -> None:
        lengths = torch.as_tensor(lengths)
        if sampler is None:
            sampler = _Epoch(len(lengths))
        super().__init__(sampler, batch_size, drop_last)
        if hasattr(sampler, "num_replicas") and hasattr(sampler, "rank"):  # injected by Lightning under DDP
            num_replicas, rank = int(sampler.num_replicas), int(sampler.rank)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        if bucket_batches < 1:
            raise ValueError(f"bucket_batches must be >= 1, got {bucket_batches}")
        self.lengths, self.shuffle, self.seed = lengths, shuffle, seed
        self.num_replicas, self.rank, self.bucket_batches = num_replicas, rank, bucket_batches
        self.even = shuffle if even is None else even
        total = len(lengths) // batch_size if drop_last else math.ceil(len(lengths) / batch_size)
        if self.even and num_replicas > 1:
            total -= total % num_replicas
        if num_replicas > 1 and total < num_replicas:
            raise ValueError(f"{len(lengths)} sequences make {total} batches of {batch_size}: too few for {num_replicas} ranks")
        self._total = total

    @property
    def epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        else:
            self.sampler = _Epoch(len(self.lengths))
            self.sampler.set_epoch(epoch)

    def all_batches(self) -> List[List[int]]:
        """Every rank's batches of this epoch, in order, before sharding."""
        n, size = len(self.lengths), self.batch_size
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
            order = torch.randperm(n, generator=generator)
            batches: List[Tensor] = []
            chunk = size * self.bucket_batches
            for start in range(0, n, chunk):
                idx = order[start : start + chunk]
                idx = idx[torch.argsort(self.lengths[idx], descending=True, stable=True)]
                batches.extend(idx.split(size))
            if self.drop_last and batches and len(batches[-1]) < size:
                batches.pop()
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        else:
            order = torch.argsort(self.lengths, descending=True, stable=True)
            batches = list(order.split(size))
            if self.drop_last and batches and len(batches[-1]) < size:
                batches.pop()
        return [b.tolist() for b in batches[: self._total]]

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.all_batches()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return len(range(self.rank, self._total, self.num_replicas))


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the padded ``(B, T)`` grid that is padding, over all ``batches``."""
    lengths = torch.as_tensor(lengths)
    real = padded = 0
    for b in batches:
        ls = lengths[torch.as_tensor(b)]
        real += int(ls.sum())
        padded += int(ls.max()) * len(b)
    return 1 - real / padded if padded else 0.0


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


# ---- the shared datamodule ------------------------------------------------------------------------
def datamodule_world(datamodule: L.LightningDataModule) -> Tuple[int, int]:
    """``(world size, rank)`` of the trainer a datamodule is attached to; ``(1, 0)`` without one."""
    trainer = getattr(datamodule, "trainer", None)
    if trainer is None:
        return 1, 0
    return trainer.world_size, trainer.global_rank


def length_bucketed_loader(datamodule: L.LightningDataModule, dataset: Dataset, collate_fn: Callable, shuffle: bool) -> DataLoader:
    """The loader every text datamodule serves: ``dataset`` (with a ``lengths`` tensor) in batches of
    ``hparams.batch_size`` (training) or ``eval_batch_size`` (default 2x), bucketed by length when
    ``hparams.bucket`` (:class:`BucketBatchSampler`, seeded, sharded across DDP ranks). Call it from a
    ``*_dataloader`` hook: Lightning records the sampler's arguments there to re-create it under DDP."""
    hp = datamodule.hparams
    batch_size = hp.batch_size if shuffle else (hp.eval_batch_size or 2 * hp.batch_size)
    common = dict(collate_fn=collate_fn, num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0)
    if not hp.bucket:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **common)
    world, rank = datamodule_world(datamodule)
    sampler = BucketBatchSampler(
        None, batch_size, False, lengths=dataset.lengths, shuffle=shuffle, seed=hp.seed,
        num_replicas=world, rank=rank, bucket_batches=hp.bucket_batches,
    )
    return DataLoader(dataset, batch_sampler=sampler, **common)


class BucketedLoaders:
    """The four dataloaders of a text datamodule that keeps its splits in ``self.datasets``
    (``train``/``val``/``test``, each with a ``lengths`` tensor) and batches them with
    ``collate_fn``: bucketed by length (:func:`length_bucketed_loader`), the test split in file order
    for ``predict``."""

    collate_fn: Callable = staticmethod(pad_collate)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        return length_bucketed_loader(self, self.datasets[split], self.collate_fn, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split in file order (predictions line up with the test file's lines), not bucketed."""
        self.setup()
        hp = self.hparams
        return DataLoader(self.datasets["test"], batch_size=hp.eval_batch_size or 2 * hp.batch_size,
                          shuffle=False, collate_fn=self.collate_fn, num_workers=hp.num_workers)


@dataclass
class RawSplit:
    """Texts as read from the files: ``sources[i]`` says where text ``i`` came from (``file:line``)."""

    texts: List[str]
    labels: List[int]
    sources: List[str]

    def subset(self, idx: Sequence[int]) -> "RawSplit":
        return RawSplit([self.texts[i] for i in idx], [self.labels[i] for i in idx], [self.sources[i] for i in idx])


class TextClassificationDataModule(BucketedLoaders, L.LightningDataModule):
    """Shared by :class:`~datamodules.imdb.IMDBDataModule` and :class:`~datamodules.ag_news.AGNewsDataModule`.

    A subclass says where its files are (:meth:`input_files`, downloading them if needed) and how to read
    them (:meth:`read`: ``{"train": RawSplit, "test": RawSplit}`` and the label names). This class
    carves a seeded stratified validation split out of train, trains the tokenizer on the remaining
    training texts only, encodes every split, caches the result (see :func:`cached`) and serves
    bucketed, padded batches. After ``setup`` it exposes ``tokenizer_json``, ``label_names``,
    ``max_tokens`` and ``truncation`` for the model.
    """

    name = "text"

    def __init__(
        self,
        root: Optional[str] = None,
        tokenizer: str = "word",
        vocab_size: int = 30_000,
        min_frequency: int = 2,
        lowercase: bool = True,
        max_tokens: Optional[int] = 400,
        truncation: str = "head_tail",
        val_fraction: float = 0.1,
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        bucket: bool = True,
        bucket_batches: int = 50,
        seed: int = 0,
        cache_dir: Optional[str] = None,
        num_workers: int = 0,
        encoding_errors: str = "strict",
    ) -> None:
        """
        Args:
            root: where the data is (see the subclass); ``None`` = download from the canonical source.
            tokenizer: ``word`` (word-level vocabulary) or ``bpe`` (byte-pair merges over words).
            vocab_size, min_frequency: tokenizer limits (``vocab_size`` includes the 4 special tokens).
            lowercase: lowercase before tokenizing.
            max_tokens, truncation: longer texts are cut to ``max_tokens`` tokens by the policy
                ``head`` | ``tail`` | ``head_tail`` (see :func:`truncate`); ``None`` = keep everything.
            val_fraction: share of each training class held out for validation (seeded, stratified).
            batch_size: per rank; ``eval_batch_size`` for validation/test/predict (default 2x).
            bucket: batch texts of similar length (:class:`BucketBatchSampler`); ``False`` = random batches.
            bucket_batches: how many batches' worth of texts are sorted together when bucketing.
            seed: for the validation split and the batch order.
            cache_dir: where tokenized datasets are cached (default ``zoo_home()/"cache"/"text"``).
            num_workers: dataloader worker processes.
            encoding_errors: ``strict`` (invalid UTF-8 is an error naming the file and line) or
                ``replace`` (invalid bytes become U+FFFD).
        """
        super().__init__()
        if tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer must be one of {TOKENIZER_KINDS}, got {tokenizer!r}")
        if truncation not in TRUNCATION_POLICIES:
            raise ValueError(f"truncation must be one of {TRUNCATION_POLICIES}, got {truncation!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        if encoding_errors not in ("strict", "replace"):
            raise ValueError(f"encoding_errors must be 'strict' or 'replace', got {encoding_errors!r}")
        self.save_hyperparameters()
        self.tokenizer_json: Optional[str] = None
        self.label_names: Optional[List[str]] = None
        self.datasets: Dict[str, EncodedTexts] = {}

    # -- what a subclass provides -------------------------------------------------------------------
    def input_files(self) -> List[Path]:
        """The files the data is read from (downloaded first if needed): their identity keys the cache."""
        raise NotImplementedError

    def read(self, files: List[Path]) -> Tuple[Dict[str, RawSplit], List[str]]:
        """``({"train": RawSplit, "test": RawSplit}, label_names)``."""
        raise NotImplementedError

    def read_settings(self) -> Dict:
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
    def settings(self) -> Dict:
        hp = self.hparams
        return {
            "module": type(self).__name__, "tokenizer": hp.tokenizer, "vocab_size": hp.vocab_size,
            "min_frequency": hp.min_frequency, "lowercase": hp.lowercase, "val_fraction": hp.val_fraction,
            "seed": hp.seed, "encoding_errors": hp.encoding_errors, **self.read_settings(),
        }

    def _build(self) -> Dict:
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
                    raise DataFormatError(f"{split.sources[i]}: no tokens left after normalization (text {split.texts[i][:80]!r})")
            flat, offsets = pack(ids)
            encoded[name] = {"ids": flat, "offsets": offsets, "labels": torch.tensor(split.labels, dtype=torch.long)}
        return {"tokenizer_json": tokenizer.to_str(), "label_names": list(label_names), "splits": encoded}

    def load(self) -> Dict:
        """Read + tokenize, or load the cached result."""
        self._files = self.input_files()
        return cached(self.name, self._files, self.settings, self._build, self.hparams.cache_dir)

    def prepare_data(self) -> None:
        self.load()  # on one process per node: downloads and fills the cache; other ranks then read it

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        data = self.load()
        self.tokenizer_json, self.label_names = data["tokenizer_json"], list(data["label_names"])
        kw = dict(max_tokens=self.hparams.max_tokens, truncation=self.hparams.truncation)
        self.datasets = {name: EncodedTexts.from_split(split, **kw) for name, split in data["splits"].items()}

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
