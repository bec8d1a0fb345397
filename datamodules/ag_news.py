"""AG News topic classification (Zhang, Zhao & LeCun, 2015): 4 classes, 120,000 train + 7,600 test.

Format (the original ``ag_news_csv`` release): ``train.csv`` and ``test.csv`` without a header, every
field double-quoted, columns ``class`` (1-4), ``title``, ``description``; ``classes.txt`` holds the
class names, line ``n`` naming class ``n``.

Source: the authors' ``ag_news_csv.tar.gz`` (their Google Drive folder, the link the paper's
repository gives), fetched through :func:`datamodules.download.fetch` with its sha256 and read in
place. Or ``root``: that tarball, a folder holding ``train.csv`` and ``test.csv`` (and
``classes.txt``), or a single csv (e.g. a 2,000-row slice), which is split into train and test by a
seeded stratified rule (``test_fraction`` of each class to test). Validation is then carved from train
the same way (``val_fraction``).

Text of a row: ``title + "\\n" + description`` (the tokenizer sees the title's words, then the
description's; the newline is just whitespace to it), after undoing the release's escapes: ``\\``
(its newline escape, with or without the ``n``) becomes a space, and HTML entities, including the
mangled ``#36;`` form common in this release, are decoded (``#36;`` → ``$``).

Bad input: a row whose column count is not 3, or whose class is not an integer in 1..K (K = the number
of names in ``classes.txt``, 4 by default), or whose title and description are both empty, is an error
naming the file and line; blank lines are skipped; invalid UTF-8 is an error naming the file and line
(or becomes U+FFFD with ``encoding_errors="replace"``); a folder without the csv files is an error.
"""

from __future__ import annotations

import csv
import html
import io
import re
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .download import DataFormatError, MissingDataError, fetch, unreadable
from .text import RawSplit, TextClassificationDataModule, stratified_split

URL = "https://drive.google.com/uc?export=download&id=0Bz8a_Dbh9QhbUDNpeUdjb0wxRms"
FILENAME = "ag_news_csv.tar.gz"
SHA256 = "4e2fc37d369e6e317a8b62d0d2f11d379f8c3dde60c07c35a46b069a246498ad"
DEFAULT_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
_ENTITY = re.compile(r"(?<![&\w])#(\d+);")


def clean(field: str) -> str:
    """Undo the release's escapes: backslashes (its newlines) → spaces, ``#36;``/``&amp;``/... decoded."""
    field = field.replace("\\", " ")
    field = _ENTITY.sub(r"&#\1;", field)
    return " ".join(html.unescape(field).split())


def join(title: str, description: str) -> str:
    """The text a row contributes: its cleaned title, a newline, its cleaned description."""
    return f"{clean(title)}\n{clean(description)}"


def parse_csv(text: str, source: str, num_classes: int) -> RawSplit:
    """Rows of an AG News csv → texts, 0-based labels and ``file:line`` sources."""
    texts, labels, sources = [], [], []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != 3:
                raise DataFormatError(
                    f"{source}:{line}: expected 3 columns (class, title, description), got {len(row)}: {row[:4]!r}"
                )
            label, title, description = row
            if not label.strip().isdigit() or not 1 <= int(label) <= num_classes:
                raise DataFormatError(f"{source}:{line}: class must be an integer in 1..{num_classes}, got {label!r}")
            text = join(title, description)
            if not text.strip():
                raise DataFormatError(f"{source}:{line}: empty title and description")
            texts.append(text)
            labels.append(int(label) - 1)
            sources.append(f"{source}:{line}")
    except csv.Error as err:
        raise DataFormatError(f"{source}:{reader.line_num}: malformed csv ({err})") from None
    if not texts:
        raise DataFormatError(f"{source}: no rows")
    return RawSplit(texts, labels, sources)


def parse_classes(text: str, source: str) -> List[str]:
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) < 2:
        raise DataFormatError(f"{source}: expected one class name per line (at least 2), got {len(names)}")
    return names


class AGNewsDataModule(TextClassificationDataModule):
    """AG News → ``{"ids", "lengths", "labels"}`` batches (labels 0-3: World, Sports, Business, Sci/Tech).

    Args (besides those of :class:`~datamodules.text.TextClassificationDataModule`):
        root: ``None`` (download the original ``ag_news_csv.tar.gz``, sha256-checked), that tarball,
            a folder with ``train.csv`` + ``test.csv`` (+ ``classes.txt``), or one csv file.
        test_fraction: with a single csv only: the share of each class that becomes the test split.
    """

    name = "ag_news"

    def __init__(
        self,
        test_fraction: float = 0.2,
        max_tokens: Optional[int] = 128,
        truncation: str = "head",
        **kwargs: Any,
    ) -> None:
        """
        Args:
            test_fraction: with a single csv only: the share of each class that becomes the test split.
            max_tokens, truncation: as in the parent; AG News texts are short (a title and a sentence
                or two), so 128 tokens from the start.
            **kwargs: every other argument of :class:`~datamodules.text.TextClassificationDataModule`.
        """
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        super().__init__(max_tokens=max_tokens, truncation=truncation, **kwargs)

    def read_settings(self) -> Dict:
        root = self.hparams.root
        single = root is not None and Path(root).expanduser().suffix.lower() == ".csv"
        return {"test_fraction": self.hparams.test_fraction} if single else {}

    def input_files(self) -> List[Path]:
        root = self.hparams.root
        self._mode = "archive"
        if root is None:
            return [fetch(URL, SHA256, filename=FILENAME)]
        path = Path(root).expanduser()
        if path.is_file():
            self._mode = "csv" if path.suffix.lower() == ".csv" else "archive"
            classes = path.with_name("classes.txt")
            return [path, classes] if self._mode == "csv" and classes.is_file() else [path]
        if not path.is_dir():
            raise MissingDataError(f"AG News root {path} does not exist (expected a folder, a csv or {FILENAME})")
        self._mode = "folder"
        folder = path / "ag_news_csv" if not (path / "train.csv").exists() and (path / "ag_news_csv").is_dir() else path
        missing = [n for n in ("train.csv", "test.csv") if not (folder / n).is_file()]
        if missing:
            raise MissingDataError(
                f"AG News folder {folder} lacks {' and '.join(missing)} (expected train.csv, test.csv, classes.txt)"
            )
        return [folder / n for n in ("train.csv", "test.csv", "classes.txt") if (folder / n).is_file()]

    def read(self, files: List[Path]) -> Tuple[Dict[str, RawSplit], List[str]]:
        contents: Dict[str, Tuple[bytes, str]] = {}
        if self._mode == "archive":
            archive = files[0]
            try:
                with tarfile.open(archive, "r:*") as tar:
                    for member in tar:
                        name = Path(member.name).name
                        if member.isfile() and name in ("train.csv", "test.csv", "classes.txt"):
                            contents[name] = (tar.extractfile(member).read(), f"{archive}:{member.name}")
            except (tarfile.TarError, EOFError, OSError) as err:
                raise unreadable(archive, "tar archive", err) from None
            missing = [n for n in ("train.csv", "test.csv") if n not in contents]
            if missing:
                raise DataFormatError(f"{archive}: no {' or '.join(missing)} inside (expected ag_news_csv/train.csv, test.csv)")
        else:
            for path in files:
                contents[path.name if self._mode == "folder" or path.name == "classes.txt" else "single.csv"] = (
                    path.read_bytes(),
                    str(path),
                )
        names = DEFAULT_CLASSES
        if "classes.txt" in contents:
            data, source = contents["classes.txt"]
            names = parse_classes(self.decode(data, source), source)
        parse = lambda key: parse_csv(self.decode(*contents[key]), contents[key][1], len(names))  # noqa: E731
        if self._mode == "csv":
            rows = parse("single.csv")
            train, test = stratified_split(rows.labels, self.hparams.test_fraction, self.hparams.seed + 1)
            return {"train": rows.subset(train), "test": rows.subset(test)}, names
        return {"train": parse("train.csv"), "test": parse("test.csv")}, names
