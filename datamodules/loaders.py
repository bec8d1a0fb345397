"""Batches: the one dataloader mixin every datamodule uses, the collate functions, length bucketing.

- :class:`SplitLoaders`: ``train/val/test/predict_dataloader`` written once. A datamodule fills
  ``self.datasets`` (``{"train", "val", "test"}: Dataset``) in an idempotent ``setup`` and says only
  how a split is batched (:meth:`SplitLoaders.make_loader`): plain batches by default (images,
  clips), bucketed by length for text (:func:`length_bucketed_loader`), already-batched streams for
  the character corpus. ``predict_dataloader`` serves ``predict_split`` (the test split) in its
  stored order, so ``zoo predict`` lines up with the files; every predict batch carries ``index``
  (the example's position in its split) and the cheap raw identifiers a dataset has (source file,
  text, image, video).
- :func:`pad_collate` (token ids), :func:`pad_clips` (video clips): pad to the longest of a batch
  and give the true ``lengths``; nothing at a padded step is real.
- :class:`BucketBatchSampler`: batches of similar length (little padding), shuffled per epoch with a
  seed, sharded across DDP ranks by the sampler itself (see its docstring for how Lightning treats
  it); :func:`padding_fraction` measures what it saves.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from .errors import InputError, MissingDataError
from .tokenizers import PAD_ID

__all__ = [
    "IGNORE",
    "MODES",
    "BucketBatchSampler",
    "SplitLoaders",
    "datamodule_world",
    "length_bucketed_loader",
    "pad_clips",
    "pad_collate",
    "padding_fraction",
    "training_position",
]

#: Label of a padded or unlabelled step: ignored by the losses and the metrics (``cross_entropy``'s default).
IGNORE = -100
#: How a split is read: ``train`` (shuffled), ``eval`` (validation/test), ``predict`` (stored order).
MODES = ("train", "eval", "predict")
# Per-example fields that identify an example in a prediction: carried through as lists.
_IDENTIFIERS = ("source", "text")


# ---- collate ----------------------------------------------------------------------------------------
def pad_collate(items: List[Dict]) -> Dict[str, Any]:
    """Pad to the longest sequence of the batch with ``<pad>`` = 0; ``lengths`` are the true lengths.
    ``labels`` (from ``label``) and ``index`` become tensors, ``source``/``text`` lists, when present."""
    lengths = torch.tensor([len(x["ids"]) for x in items], dtype=torch.long)
    ids = torch.full((len(items), int(lengths.max())), PAD_ID, dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item["ids"])] = item["ids"]
    batch: Dict[str, Any] = {"ids": ids, "lengths": lengths}
    if "label" in items[0]:
        batch["labels"] = torch.tensor([x["label"] for x in items], dtype=torch.long)
    if "index" in items[0]:
        batch["index"] = torch.tensor([x["index"] for x in items], dtype=torch.long)
    for key in _IDENTIFIERS:
        if key in items[0]:
            batch[key] = [x[key] for x in items]
    return batch


def pad_clips(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Collate clips of different lengths: pad at the end with zeros (labels with ``-100``, as are all
    labels of an unlabelled clip; ``needs_memory`` with False) and give the true ``lengths``; ``index``
    and ``video`` identify the clips."""
    key = "frames" if "frames" in items[0] else "features"
    lengths = torch.tensor([item[key].shape[0] for item in items], dtype=torch.long)
    T = int(lengths.max())
    first = items[0][key]
    shapes = {tuple(item[key].shape[1:]) for item in items}
    if len(shapes) > 1:
        raise InputError(f"clips in a batch differ in frame shape {sorted(shapes)}; set the datamodule's size")
    data = first.new_zeros((len(items), T, *first.shape[1:]))
    labels = torch.full((len(items), T), IGNORE, dtype=torch.long)
    for b, item in enumerate(items):
        n = int(lengths[b])
        data[b, :n] = item[key]
        if "labels" in item:  # an unlabelled clip (raw video at inference) keeps IGNORE
            labels[b, :n] = item["labels"]
    batch: Dict[str, Any] = {key: data, "lengths": lengths, "labels": labels}
    batch["clip_labels"] = torch.tensor([int(item.get("clip_label", IGNORE)) for item in items], dtype=torch.long)
    if any("needs_memory" in item for item in items):
        mask = torch.zeros(len(items), T, dtype=torch.bool)
        for b, item in enumerate(items):
            if "needs_memory" in item:
                mask[b, : int(lengths[b])] = item["needs_memory"]
        batch["needs_memory"] = mask
    if "index" in items[0]:
        batch["index"] = torch.tensor([item["index"] for item in items], dtype=torch.long)
    if "video" in items[0]:
        batch["video"] = [item["video"] for item in items]
    return batch


# ---- length bucketing -----------------------------------------------------------------------------
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
    (``shuffle=False``): all indices sorted by length (longest first), cut into batches.

    Under DDP with ``R`` ranks, ``batch_size`` is per rank: the batches above are built with the global
    size ``R * batch_size`` -- exactly one process's batches with that size -- and rank ``r`` takes
    items ``r, r + R, ...`` of each, so step ``s`` of the ``R`` ranks together reads step ``s`` of one
    process (what makes DDP equal one process, docs/reliability.md). The shards are disjoint. With
    ``even=True`` (the default when shuffling) a last global batch of fewer than ``R`` items is
    dropped, so every rank runs the same number of steps (DDP needs that for its gradient all-reduce).

    Resuming mid-epoch: ``resume=(epoch, done)`` makes the first iteration serve ``epoch``'s batches
    from batch ``done`` on (those before were trained on before the checkpoint); later iterations
    follow :meth:`set_epoch` as usual. :meth:`SplitLoaders.state_dict` records the position.

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
        resume: Optional[Tuple[int, int]] = None,
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
        self.global_size = batch_size * num_replicas
        n = len(lengths)
        total = n // self.global_size if drop_last else math.ceil(n / self.global_size)
        if self.even and not drop_last and 0 < n % self.global_size < num_replicas:
            total -= 1  # a last global batch too small to give every rank an item (all_batches drops it)
        if total < 1:
            raise InputError(f"{n} sequences are too few for a batch on each of {num_replicas} ranks")
        self._total = total
        self.resume = resume

    @property
    def epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        else:
            self.sampler = _Epoch(len(self.lengths))
            self.sampler.set_epoch(epoch)

    def all_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        """The global batches of ``epoch`` (default: the current one), in order, before sharding."""
        n, size = len(self.lengths), self.global_size
        epoch = self.epoch if epoch is None else epoch
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * epoch)
        if self.shuffle:
            order = torch.randperm(n, generator=generator)
            batches: List[Tensor] = []
            chunk = size * self.bucket_batches
            for start in range(0, n, chunk):
                idx = order[start : start + chunk]
                batches.extend(idx[torch.argsort(self.lengths[idx], descending=True, stable=True)].split(size))
        else:
            batches = list(torch.argsort(self.lengths, descending=True, stable=True).split(size))
        if batches and len(batches[-1]) < (size if self.drop_last else self.num_replicas if self.even else 1):
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return [b.tolist() for b in batches]

    def __iter__(self) -> Iterator[List[int]]:
        epoch, done = self.epoch, 0
        if self.resume is not None:  # once: the rest of the epoch the checkpoint was written in
            (epoch, done), self.resume = self.resume, None
        shards = (b[self.rank :: self.num_replicas] for b in self.all_batches(epoch)[done:])
        return iter([shard for shard in shards if shard])  # uneven (evaluation): a rank may sit out the last

    def __len__(self) -> int:
        last = len(self.lengths) - (self._total - 1) * self.global_size  # the last global batch's size
        return self._total - (not self.drop_last and last <= self.rank)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the padded ``(B, T)`` grid that is padding, over all ``batches``."""
    lengths = torch.as_tensor(lengths)
    real = padded = 0
    for b in batches:
        ls = lengths[torch.as_tensor(b)]
        real += int(ls.sum())
        padded += int(ls.max()) * len(b)
    return 1 - real / padded if padded else 0.0


def datamodule_world(datamodule: L.LightningDataModule) -> Tuple[int, int]:
    """``(world size, rank)`` of the trainer a datamodule is attached to; ``(1, 0)`` without one."""
    trainer = getattr(datamodule, "trainer", None)
    if trainer is None:
        return 1, 0
    return trainer.world_size, trainer.global_rank


def training_position(trainer: Optional[L.Trainer]) -> Optional[Tuple[int, int]]:
    """``(epoch, batches of it already trained on)`` while ``trainer`` fits (``None`` otherwise); a
    finished epoch reads as the start of the next. Read off Lightning's own progress counters, which it
    restores from a checkpoint too: the position a resumed run must continue from."""
    if trainer is None or trainer.state.fn != "fit":
        return None
    epoch, done = trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed
    return (epoch + 1, 0) if done >= trainer.num_training_batches else (epoch, done)


def length_bucketed_loader(
    datamodule: L.LightningDataModule, dataset: Dataset, collate_fn: Callable, shuffle: bool
) -> DataLoader:
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
        None,
        batch_size,
        False,
        lengths=dataset.lengths,
        shuffle=shuffle,
        seed=hp.seed,
        num_replicas=world,
        rank=rank,
        bucket_batches=hp.bucket_batches,
        resume=datamodule.take_resume() if shuffle else None,
    )
    return DataLoader(dataset, batch_sampler=sampler, **common)


# ---- the mixin ------------------------------------------------------------------------------------
class SplitLoaders:
    """The four dataloader hooks of every datamodule, written once (mix in before
    ``L.LightningDataModule``).

    The datamodule provides an idempotent ``setup`` that fills ``self.datasets`` (``train``, ``val``,
    ``test``) and, where plain batches are not right, :meth:`make_loader`. It may set:

    - ``collate_fn``: how plain batches are collated (``None``: torch's default);
    - ``predict_split``: the split ``predict_dataloader`` serves (``test``);
    - ``eval_batch_factor``: the evaluation batch size, when ``eval_batch_size`` is not set, is this
      many times ``batch_size`` (1);

    Batch sizes, workers and seed are read from :meth:`loader_options` (``self.hparams``).
    """

    collate_fn: Optional[Callable] = None
    predict_split: str = "test"
    eval_batch_factor: int = 1
    datasets: Dict[str, Dataset]
    _resume: Optional[Tuple[int, int]] = None

    # ---- the training position in checkpoints (Lightning calls these two) --------------------------
    def state_dict(self) -> Dict[str, Any]:
        """``{"epoch", "batches_done"}``: where training is in its epoch (:func:`training_position`)."""
        position = training_position(getattr(self, "trainer", None))
        return {} if position is None else {"epoch": position[0], "batches_done": position[1]}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if "epoch" in state_dict:
            self._resume = (int(state_dict["epoch"]), int(state_dict["batches_done"]))
            # Lightning warns that a mid-epoch resume restarts the epoch unless the *dataloader* is
            # stateful; ours resumes through the datamodule instead, so the warning would be wrong.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")

    def take_resume(self) -> Optional[Tuple[int, int]]:
        """The checkpoint's ``(epoch, batches_done)``, once: the next training loader starts there (a
        loader that cannot resume mid-epoch restarts the epoch, as Lightning's default does)."""
        resume, self._resume = self._resume, None
        return resume

    def loader_options(self) -> Mapping[str, Any]:
        """``batch_size``, ``eval_batch_size`` (optional), ``num_workers``, ``seed`` (optional)."""
        return self.hparams

    def describe_source(self) -> str:
        return type(self).__name__

    def split_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` after ``setup``; a missing or empty split is a
        :class:`~datamodules.download.MissingDataError` naming the data."""
        self.setup()
        dataset = self.datasets.get(split)
        if dataset is None or len(dataset) == 0:
            raise MissingDataError(f"{self.describe_source()} has no {split} split (no examples for it)")
        return dataset

    def loader_batch_size(self, mode: str) -> int:
        opts = self.loader_options()
        if mode == "train":
            return int(opts["batch_size"])
        return int(opts.get("eval_batch_size") or self.eval_batch_factor * opts["batch_size"])

    def plain_loader(self, dataset: Dataset, mode: str) -> DataLoader:
        """Batches in stored order (``eval``/``predict``) or shuffled (``train``: a new order every epoch,
        from the ``seed`` option or else the run's seed; sharded across DDP ranks so that they read one
        process's batches, and resumable mid-epoch -- a :class:`BucketBatchSampler` over equal lengths)."""
        opts = self.loader_options()
        workers = int(opts.get("num_workers", 0))
        common = dict(collate_fn=self.collate_fn, num_workers=workers, persistent_workers=workers > 0)
        if mode != "train":
            return DataLoader(dataset, batch_size=self.loader_batch_size(mode), shuffle=False, **common)
        world, rank = datamodule_world(self)
        seed = opts.get("seed", os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = BucketBatchSampler(
            None,
            self.loader_batch_size(mode),
            False,
            lengths=[0] * len(dataset),
            seed=int(seed),
            num_replicas=world,
            rank=rank,
            bucket_batches=1,
            resume=self.take_resume(),
        )
        return DataLoader(dataset, batch_sampler=sampler, **common)

    def make_loader(self, dataset: Dataset, mode: str) -> DataLoader:
        """How a split is batched (``mode`` in :data:`MODES`); plain batches unless overridden."""
        return self.plain_loader(dataset, mode)

    def train_dataloader(self) -> DataLoader:
        return self.make_loader(self.split_dataset("train"), "train")

    def val_dataloader(self) -> DataLoader:
        return self.make_loader(self.split_dataset("val"), "eval")

    def test_dataloader(self) -> DataLoader:
        return self.make_loader(self.split_dataset("test"), "eval")

    def predict_dataloader(self) -> DataLoader:
        """``predict_split`` in stored order: prediction ``i`` is example ``i`` of the split."""
        return self.make_loader(self.split_dataset(self.predict_split), "predict")
