"""The input contract of every inference command: inputs in, one record per input out, nothing lost.

- **Inputs** (:func:`read_items`): the positional arguments, or one per line of stdin (none, or ``-``),
  or of a text file. Lines are bytes decoded with ``--encoding`` (UTF-8 by default) one at a time: a
  line that does not decode is an error record (``line 8: not valid UTF-8 (byte 0xff at column 1)``)
  and the next line is read as usual; a blank line is an error record too, unless ``--skip-blank``.
- **Records** (:func:`zoo.records.predict_records`): one per input, in order, ``index`` = its position
  (``line`` = its line, ``file`` = its file where it has one); a bad input's record holds ``error``. With
  ``--json`` each is a JSON object; otherwise the command's text line, or ``ERROR<TAB>why``.
- **Output** (:class:`Records`): stdout, or ``--output FILE`` written to ``FILE.partial`` a whole line
  at a time and renamed to ``FILE`` when every input has its record. Interrupted (Ctrl-C, or
  ``--strict`` at a bad input), the records finished so far stay in ``FILE.partial``, cut after the last
  whole line (no file when none was finished).
- **Exit status** (:data:`zoo.cli.common.SOME_FAILED`): 0 when every input has its result, 3 when some
  have error records, 2 for a user error (or ``--strict``), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import codecs
import os
import sys
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from zoo.cli import common
from zoo.errors import UserError
from zoo.records import Item, failed, predict_records

__all__ = ["Records", "decode_lines", "read_items", "run_records", "stdin_items", "text_file_items"]

Record = Dict[str, Any]


# ---- inputs ------------------------------------------------------------------------------------
def encoding_name(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "UTF-8" if name == "utf-8" else encoding


def decode_line(raw: bytes, encoding: str) -> Tuple[Optional[str], Optional[str]]:
    """``(text, None)``, or ``(None, why)`` for bytes that are not ``encoding``: the byte and its
    column (1-based, in characters)."""
    try:
        return raw.decode(encoding), None
    except UnicodeDecodeError as e:
        column = len(raw[: e.start].decode(encoding, errors="replace")) + 1
        return None, f"not valid {encoding_name(encoding)} (byte 0x{raw[e.start]:02x} at column {column})"


def decode_lines(stream: Iterable[bytes], encoding: str = "utf-8") -> Iterator[Tuple[int, Optional[str], Optional[str]]]:
    """``(line number, text or None, why not)`` for each line of a byte stream, its ``\\n`` or
    ``\\r\\n`` removed (and a UTF-8 byte-order mark at the start of the first)."""
    for number, raw in enumerate(stream, start=1):
        raw = raw[:-1] if raw.endswith(b"\n") else raw
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if number == 1 and raw.startswith(codecs.BOM_UTF8) and codecs.lookup(encoding).name == "utf-8":
            raw = raw[len(codecs.BOM_UTF8) :]
        text, why = decode_line(raw, encoding)
        yield number, text, why


def line_items(
    stream: Iterable[bytes], args: argparse.Namespace, where: Callable[[int], str], start: int = 0, files: bool = False
) -> Iterator[Item]:
    """The items of a stream of lines, numbered from ``start``: blank lines are error records unless
    ``--skip-blank`` skips them (never silently: skipping is asked for)."""
    index = start
    for number, text, why in decode_lines(stream, getattr(args, "encoding", "utf-8")):
        if why is None and not text.strip():
            if getattr(args, "skip_blank", False):
                continue
            why = "blank line (every line is one input; --skip-blank skips blank lines)"
        key = {"line": number, **({"file": text} if files and why is None else {})}
        yield Item(index, text, key, where(number), why)
        index += 1


def stdin_bytes() -> BinaryIO:
    stdin = sys.stdin
    if stdin is None:
        return open(os.devnull, "rb")
    if stdin.isatty():
        sys.stderr.write("reading inputs from stdin, one per line (end with Ctrl-D)\n")
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        return buffer
    # a text stream without bytes underneath (tests' StringIO): its text is the bytes as UTF-8
    import io

    return io.BytesIO(stdin.read().encode("utf-8", errors="surrogateescape"))


def stdin_items(args: argparse.Namespace, start: int = 0, files: bool = False) -> Iterator[Item]:
    """One item per line of stdin (``line 8: ...`` in its errors)."""
    yield from line_items(stdin_bytes(), args, lambda n: f"line {n}", start, files)


def text_file_items(path: str | Path, args: argparse.Namespace, files: bool = False) -> Iterator[Item]:
    """One item per line of a text file (``FILE:8: ...`` in its errors)."""
    from zoo.errors import MissingInputError, NotAFileError

    path = Path(path).expanduser()
    if not path.exists():
        raise MissingInputError(f"{path} does not exist (expected a text file, one input per line)")
    if path.is_dir():
        raise NotAFileError(f"{path} is a folder (expected a text file, one input per line)")
    with open(path, "rb") as stream:
        yield from line_items(stream, args, lambda n: f"{path}:{n}", 0, files)


def read_items(args: argparse.Namespace, inputs: Optional[Sequence[str]] = None, files: bool = False) -> Iterator[Item]:
    """The command's inputs as items, read lazily: the positional inputs (``argument k`` in their
    errors; a file's path where they are files), ``-`` (or none) one per line of stdin. ``files``: the
    inputs are paths, each record keyed by its ``file``."""
    given = list(getattr(args, "inputs", []) if inputs is None else inputs)
    index = 0
    for k, value in enumerate(given or ["-"], start=1):
        if value == "-":
            for item in stdin_items(args, index, files):
                yield item
                index = item.index + 1
            continue
        yield Item(index, value, {"file": value} if files else {}, value if files else f"argument {k}")
        index += 1


# ---- records out -------------------------------------------------------------------------------
class Records:
    """Where a command's records go, a whole line at a time: stdout (``None`` or ``-``), or ``FILE``
    through ``FILE.partial``, renamed into place only when the command finishes; an interrupted run
    leaves the finished lines in ``FILE.partial`` (cut after the last whole one) or no file at all."""

    def __init__(self, output: Optional[str], prog: str) -> None:
        self.prog, self.count, self.done = prog, 0, 0
        self.path = None if output in (None, "-") else Path(output).expanduser()
        self.partial = None if self.path is None else self.path.with_name(self.path.name + ".partial")
        self.file: Optional[BinaryIO] = None

    def __enter__(self) -> "Records":
        if self.path is not None:
            if self.path.is_dir():
                from zoo.errors import NotAFileError

                raise NotAFileError(f"--output {self.path} is a folder; --output names the results file (or - for stdout)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.partial, "wb")
        return self

    def write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", errors="surrogateescape")
        if self.file is None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        else:
            self.file.write(data)
            self.file.flush()
            self.done += len(data)
        self.count += 1

    def __exit__(self, kind, error, traceback) -> None:
        if self.file is None:
            return
        try:
            self.file.close()
        finally:
            if kind is None:
                os.replace(self.partial, self.path)
                sys.stderr.write(f"wrote {self.count} record(s) to {self.path}\n")
            elif self.done == 0:
                self.partial.unlink(missing_ok=True)
            else:
                os.truncate(self.partial, self.done)  # a line cut by the interrupt is not a record
                sys.stderr.write(f"{self.prog}: stopped; the {self.count} record(s) finished are in {self.partial}\n")


# ---- the loop ----------------------------------------------------------------------------------
def error_line(record: Record, as_json: bool) -> str:
    return common.json_line(record) if as_json else f"ERROR\t{record['error']}"


def chunks(items: Iterable[Item], size: int) -> Iterator[List[Item]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def run_records(
    prog: str,
    args: argparse.Namespace,
    items: Iterable[Item],
    predict: Callable[[List[Any]], Sequence[Record]],
    text: Callable[[Record], str],
    *,
    chunk: int = 64,
    finish: Optional[Callable[[Record], Record]] = None,
    drop: Sequence[str] = (),
    digits: Optional[int] = None,
) -> int:
    """Every item's record through ``predict`` (``chunk`` inputs at a time), each written once known:
    ``text(record)`` or JSON (``drop``, ``digits``: :func:`zoo.callbacks.jsonable`); ``finish(record)``
    completes a good record (a figure, a name) and may refuse it with a user error, which becomes its
    error record. Returns the exit status (:data:`~zoo.cli.common.SOME_FAILED` when some failed)."""
    total = bad = 0
    with Records(getattr(args, "output", None), prog) as out:
        for batch in chunks(items, chunk):
            by_index = {item.index: item for item in batch}
            for record in predict_records(predict, batch, getattr(args, "strict", False)):
                if finish is not None and not failed(record):
                    try:
                        record = finish(record)
                    except UserError as error:
                        if getattr(args, "strict", False):
                            raise
                        record = by_index[record["index"]].failed(common.error_message(error))
                total += 1
                if failed(record):
                    bad += 1
                    out.write(error_line(record, args.json))
                else:
                    out.write(common.json_line(record, drop, digits) if args.json else text(record))
    if bad:
        sys.stderr.write(
            f"{prog}: {bad} of {total} input(s) failed (their records hold the reason); exit status {common.SOME_FAILED}\n"
        )
        return common.SOME_FAILED
    return common.OK
