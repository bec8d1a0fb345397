"""IMDB Large Movie Review Dataset (Maas et al., 2011): binary sentiment, 25,000 train + 25,000 test.

Source: the official ``aclImdb_v1.tar.gz`` from Stanford, fetched through
:func:`datamodules.download.fetch` with its sha256. Layout inside the archive (and of an extracted copy):
``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``, one review per file (``unsup/`` and the other
files are ignored). The archive is read directly, without extracting its 100,000 small files.

Labels: ``neg`` = 0, ``pos`` = 1. Validation: ``val_fraction`` of each training class, chosen by a
seeded permutation (the test split is never touched). Truncation: see
:func:`datamodules.tokenizers.truncate` (``head_tail`` by default: the first quarter of ``max_tokens`` from
the start of the review, the rest from its end).

Bad input: a review that is not UTF-8 is an error naming the file and line (or, with
``encoding_errors="replace"``, its bad bytes become U+FFFD); an empty review, or one that leaves no
tokens after normalization, is an error naming the file; an arbitrarily long review is simply
truncated; a root without reviews is an error naming the folder and the layout it expected.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .download import DataFormatError, MissingDataError, fetch, unreadable
from .text import RawSplit, TextClassificationDataModule

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
LABELS = ["neg", "pos"]
SPLITS = ("train", "test")
# aclImdb/<split>/<label>/<name>.txt, anywhere below the archive root.
MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/([^/]+\.txt)$")
LAYOUT = "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"


def _order(name: str) -> Tuple[int, str]:
    found = re.match(r"(\d+)_", name)
    return (int(found.group(1)) if found else -1, name)


def iter_archive(archive: Path) -> Iterator[Tuple[str, str, str, bytes]]:
    """``(split, label, member name, bytes)`` of every review in a tarball, in archive order."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                found = MEMBER.search(member.name)
                if found and member.isfile():
                    yield found.group(1), found.group(2), member.name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise unreadable(archive, "tar archive", err) from None


def iter_folder(folder: Path) -> Iterator[Tuple[str, str, str, bytes]]:
    for split in SPLITS:
        for label in LABELS:
            for path in (folder / split / label).glob("*.txt"):
                yield split, label, str(path), path.read_bytes()


def find_folder(root: Path) -> Optional[Path]:
    """``root`` itself if it holds ``train/`` and ``test/``, else ``root/aclImdb``; ``None`` if neither."""
    for candidate in (root, root / "aclImdb"):
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            return candidate
    return None


class IMDBDataModule(TextClassificationDataModule):
    """IMDB reviews → ``{"ids", "lengths", "labels"}`` batches (labels: 0 = neg, 1 = pos).

    ``root``: ``None`` (download the official archive into ``data_dir()``, sha256-checked), the path
    of an ``aclImdb_v1.tar.gz``-style tarball (read in place), or a folder holding ``aclImdb/`` (or
    being it). Every other argument: see :class:`~datamodules.text.TextClassificationDataModule`.
    """

    name = "imdb"

    def input_files(self) -> List[Path]:
        root = self.hparams.root
        self._archive: Optional[Path] = None
        self._folder: Optional[Path] = None
        if root is None:
            self._archive = fetch(URL, SHA256)
            return [self._archive]
        path = Path(root).expanduser()
        if path.is_file():
            self._archive = path
            return [path]
        if not path.is_dir():
            raise MissingDataError(f"IMDB root {path} does not exist (expected a tarball, or a folder with {LAYOUT})")
        self._folder = find_folder(path)
        if self._folder is None:
            raise MissingDataError(f"IMDB root {path} holds no reviews: expected {LAYOUT} below it")
        # An extracted copy is identified by every review file (one stat each: ~0.1 s for 50,000 files).
        files = sorted(p for s in SPLITS for lab in LABELS for p in (self._folder / s / lab).glob("*.txt"))
        if not files:
            raise MissingDataError(f"IMDB folder {self._folder} holds no reviews: expected {LAYOUT}")
        return files

    def read(self, files: List[Path]) -> Tuple[Dict[str, RawSplit], List[str]]:
        if self._archive is not None:
            items, where = iter_archive(self._archive), str(self._archive)
        else:
            items, where = iter_folder(self._folder), str(self._folder)
        found: Dict[str, list] = {s: [] for s in SPLITS}
        for split, label, name, data in items:
            source = f"{self._archive}:{name}" if self._archive is not None else name
            text = self.decode(data, source)
            if not text.strip():
                raise DataFormatError(f"{source}: empty review")
            found[split].append((_order(Path(name).name), text, LABELS.index(label), source))
        splits = {}
        for split in SPLITS:
            rows = found[split]
            missing = [lab for i, lab in enumerate(LABELS) if not any(r[2] == i for r in rows)]
            if missing:
                raise MissingDataError(
                    f"{where}: no reviews in {', '.join(f'aclImdb/{split}/{m}/' for m in missing)} (expected {LAYOUT})"
                )
            rows.sort(key=lambda r: (r[2], r[0]))  # neg then pos, by review id: independent of archive order
            splits[split] = RawSplit([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
        return splits, list(LABELS)


def imdb_test_reviews(archive: str | Path, per_label: Optional[int] = None) -> Tuple[List[str], List[int]]:
    """Raw test reviews and labels (0 = neg, 1 = pos) from an ``aclImdb`` tarball, ordered neg then
    pos by review id (as IMDBDataModule orders them); ``per_label``: only the first of each label.
    What the pretrained IMDB cards are scored on (``zoo models --evaluate NAME --imdb ARCHIVE``)."""
    rows = [
        (LABELS.index(label), _order(Path(name).name), data.decode("utf-8"))
        for split, label, name, data in iter_archive(Path(archive))
        if split == "test"
    ]
    rows.sort(key=lambda r: (r[0], r[1]))
    if per_label is not None:
        rows = [r for lab in range(len(LABELS)) for r in [r for r in rows if r[0] == lab][:per_label]]
    return [r[2] for r in rows], [r[0] for r in rows]
