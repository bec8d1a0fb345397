"""Batch inference that loses nothing: one record per input, in order, a bad input a record of its own.

The input contract of every task's :meth:`~zoo.tasks.base.TaskModule.predict_records` and every
inference command (docs/api.md, "The input contract")::

    inputs  x_0, x_1, ..., x_{n-1}          (strings, paths, images, (image, question) pairs, ...)
    records r_0, r_1, ..., r_{n-1}          r_i = {"index": i, **key_i, **predict([x_i])[0]}
                                            or    {"index": i, **key_i, "error": why x_i is bad}

``key_i`` names the input where it has a name (``{"line": 8}``, ``{"file": "bomb.png"}``). A good
input's record is what ``predict`` gives it in a batch of good inputs; when a batch holds a bad one,
``predict`` raises a :class:`~zoo.errors.UserError` for the whole batch, and the batch is run again one
input at a time, so that every good input gets its own result and every bad one its reason. Any other
exception is a bug and propagates. ``strict``: the first bad input raises its error instead (after
the records before it were handed on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from zoo.errors import InputError, UserError

__all__ = ["Item", "items_of", "predict_records", "failed"]


@dataclass
class Item:
    """One input: its position, its value (what ``predict`` receives), what names it in its record,
    ``where`` it came from (``line 8``, ``reviews.txt:8``, ``argument 2``, a file path: the start of its
    error message), and ``error`` when it could not even be read (undecodable bytes, a blank line)."""

    index: int
    value: Any = None
    key: Dict[str, Any] = field(default_factory=dict)
    where: str = ""
    error: Optional[str] = None

    def failed(self, message: str) -> Dict[str, Any]:
        """This input's error record: the message, prefixed with where the input came from unless
        the message names it already (a reader's errors start with the file's path)."""
        prefix = f"{self.where}: " if self.where and not message.startswith(self.where) else ""
        return {"index": self.index, **self.key, "error": prefix + message}

    def succeeded(self, result: Dict[str, Any]) -> Dict[str, Any]:
        return {"index": self.index, **self.key, **result}


def items_of(inputs: Iterable[Any]) -> List[Item]:
    """Python inputs as items: keyed by position only (``where``: ``input i``)."""
    return [Item(i, x, where=f"input {i}") for i, x in enumerate(inputs)]


def failed(record: Dict[str, Any]) -> bool:
    return "error" in record


def predict_records(
    predict: Callable[[List[Any]], Sequence[Dict[str, Any]]], items: Sequence[Item], strict: bool = False
) -> Iterator[Dict[str, Any]]:
    """The records of ``items``, in order (a generator: each is yielded once known): ``predict`` runs on
    the readable ones at once and, if it refuses the batch with a user error, on each alone. With
    ``strict`` the first bad input raises an :class:`~zoo.errors.InputError` with its record's message."""
    first_bad = next((k for k, item in enumerate(items) if item.error is not None), len(items))
    batch = list(items[:first_bad]) if strict else [item for item in items if item.error is None]
    results: Dict[int, Dict[str, Any]] = {}
    if batch:
        try:
            for item, result in zip(batch, _checked(predict, batch)):
                results[item.index] = item.succeeded(result)
        except UserError:
            results.clear()  # one bad input spoils the batch: each alone below
    for item in items:
        record = results.get(item.index)
        if record is None:
            record = item.failed(item.error) if item.error is not None else _alone(predict, item)
        if strict and failed(record):
            raise InputError(record["error"])
        yield record


def _alone(predict: Callable[[List[Any]], Sequence[Dict[str, Any]]], item: Item) -> Dict[str, Any]:
    try:
        return item.succeeded(_checked(predict, [item])[0])
    except UserError as error:
        return item.failed(str(error) or type(error).__name__)


def _checked(predict: Callable[[List[Any]], Sequence[Dict[str, Any]]], items: Sequence[Item]) -> List[Dict[str, Any]]:
    results = list(predict([item.value for item in items]))
    if len(results) != len(items):  # a task that broke the contract: a bug, not a bad input
        raise RuntimeError(f"predict returned {len(results)} results for {len(items)} inputs")
    return results
