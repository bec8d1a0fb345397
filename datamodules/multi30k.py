"""Multi30k task 1 (Elliott et al., 2016): Flickr30k image descriptions translated between languages.

The data: one English description per image with its professional translations into German, French
and Czech. The raw files are ``{split}.{lang}.gz``: gzip'd UTF-8 plain text, one untokenized sentence
per line, line ``n`` of every language of a split being translations of each other. Splits (sizes
from the repository's README: train 29,000 pairs, val 1,014, test_2016_flickr 1,000, test_2017_flickr
1,000, test_2017_mscoco 461) and the languages published for each (:data:`PUBLISHED`, from the
repository's ``data/task1/raw`` listing):

====================  =========================
split                 languages
====================  =========================
``train``             de, en, fr, cs
``val``               de, en, fr, cs
``test_2016_flickr``  de, en, fr, cs
``test_2017_flickr``  de, en, fr
``test_2017_mscoco``  de, en, fr
``test_2018_flickr``  de, en, fr, cs
====================  =========================

Source: :data:`URL_TEMPLATE`
(``https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{split}.{lang}.gz``), each
file fetched through :func:`datamodules.download.fetch` into ``data_dir()/"multi30k"``. Or ``root``: a
folder holding the same file names, gzip'd or not (``train.de.gz`` or ``train.de``).

Checksums: :data:`SHA256` pins the six de/en files of train, val and test_2016_flickr (hashes of real
copies); those are verified after every download and a cached copy is reused only if it matches. No
hash is known here for the other files (fr, cs, the later test sets): they are downloaded with
``sha256=None``, which skips the check and reuses whatever file is already present, and a warning says
so each time. Pin a hash by adding it to :data:`SHA256`.

Text: line ends are stripped and runs of whitespace collapsed to one space (meaningless in a
sentence-per-line corpus, and invisible to BLEU's tokenizer); otherwise sentences are as in the files,
and ``src_text`` / ``tgt_text`` carry them to the model for BLEU. With ``lowercase=True`` the tokens are
lowercased but the reference texts are not: score with sacreBLEU's ``lowercase=True`` then.

Tokenizers (Hugging Face ``tokenizers``), trained on the training split only, special tokens
``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3 in both kinds; see
:func:`datamodules.tokenizers.train_translation_tokenizer`:

- ``bpe`` (default): NFKC (+ lowercase), SentencePiece-style ``Metaspace`` pre-tokenizer and decoder
  (``▁`` marks the start of a word), BPE merges within words. Reversible: decoding the ids of a sentence
  gives back its NFKC-normalized (lowercased) text exactly, spaces included, as long as every character
  was seen in training (an unseen character becomes ``<unk>`` and decodes as the text ``<unk>``; a
  literal ``▁`` in the text decodes as a space). ``joint_vocab=True``: one tokenizer trained on the
  source and target training text together, used for both sides (so embeddings can be tied);
  ``False``: one per side.
- ``word``: word-level vocabulary over NFKC (+ lowercase) text split on whitespace and punctuation
  (every punctuation character is a token). Always one vocabulary per side (``joint_vocab`` is ignored).
  Detokenization is approximate (:func:`datamodules.tokenizers.join_words`): tokens are joined with spaces, the spaces
  before ``. , ! ? ; : ) '`` and after ``(`` removed, in-word hyphens, ``'s``-style contractions and
  decimal numbers rejoined; other spacing is guessed (quotes come back as ``" word "``). 99% of the
  de and en validation sentences come back exactly when every word is in the vocabulary;
  out-of-vocabulary words decode as ``<unk>``.

:func:`datamodules.tokenizers.detokenize` turns model output ids back into text for either kind: it stops at ``<eos>`` and
skips ``<pad>`` and ``<bos>``.

Batches (:func:`translation_collate`), padded with ``<pad>`` = 0::

    {"src": (B, S) long,  "src_lengths": (B,) long,   # source ids, no <bos>/<eos>; S >= 1
     "tgt": (B, T) long,  "tgt_lengths": (B,) long,   # [<bos>, ..., <eos>], lengths count both
     "src_text": list[str], "tgt_text": list[str],    # the sentences as read (references for BLEU)
     "index": (B,) long}                              # 0-based line of the pair in its split's files

Training batches are bucketed by source length (:class:`~datamodules.loaders.BucketBatchSampler`, shuffled
per epoch with ``seed``, sharded across DDP ranks); validation and test batches are sorted by source
length, longest first; ``predict_dataloader`` serves the test split in file order. Tokenized splits and
tokenizers are cached (:func:`datamodules.download.cached`) keyed by the input files and every tokenizer
setting; ``max_train_tokens`` is applied when loading, so changing it does not re-tokenize.

Bad input:

- an unknown language code, or one without files in a local ``root``: ``ValueError`` listing the
  Multi30k languages (and those found in ``root``); a language Multi30k does not publish for a split
  (e.g. ``cs`` for ``test_2017_flickr``) when downloading: ``ValueError``; ``source_lang ==
  target_lang`` or an unknown ``test_set``: ``ValueError``;
- a file missing from a local ``root``: ``FileNotFoundError`` naming the expected path;
- the two language files of a split with different line counts: ``DataFormatError`` naming both files
  and both counts; invalid UTF-8: ``DataFormatError`` naming the file and line; a file that is not
  valid gzip, or has no lines: ``DataFormatError`` naming the file;
- an empty line (or one leaving no tokens after normalization) in train: the pair is dropped, and a
  warning names the file(s) and lines; in val/test every pair is kept so indices match the files: an
  empty source encodes to zero tokens (``src_lengths`` 0; the model should translate it to an empty
  output), an empty reference to ``[<bos>, <eos>]``;
- training pairs with more than ``max_train_tokens`` tokens on either side (not counting ``<bos>`` /
  ``<eos>``) are dropped, with a log line giving the count; val/test sentences are never filtered or
  truncated, however long: the model must handle sentences longer than any it was trained on.
"""

from __future__ import annotations

import gzip
import re
import warnings
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from lightning.pytorch.utilities import rank_zero_info
from tokenizers import Tokenizer
from torch import Tensor
from torch.utils.data import Dataset

from .download import DataFormatError, data_dir, fetch, unreadable
from .errors import InputError, MissingDataError
from .text import TextDataModule
from .tokenizers import BOS_ID, EOS_ID, PAD_ID, encode_texts, load_tokenizer, pack, train_translation_tokenizer

__all__ = [
    "LANGUAGES",
    "PUBLISHED",
    "SHA256",
    "SPLITS",
    "TEST_SETS",
    "URL_TEMPLATE",
    "Multi30kDataModule",
    "TranslationPairs",
    "read_sentences",
    "translation_collate",
]

LANGUAGES = ("de", "en", "fr", "cs")
SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2018_flickr", "test_2017_mscoco")
TEST_SETS = SPLITS[2:]
#: The languages the Multi30k repository publishes for each split (task 1, ``data/task1/raw``).
PUBLISHED: Dict[str, Tuple[str, ...]] = {
    "train": LANGUAGES,
    "val": LANGUAGES,
    "test_2016_flickr": LANGUAGES,
    "test_2018_flickr": LANGUAGES,
    "test_2017_flickr": ("de", "en", "fr"),
    "test_2017_mscoco": ("de", "en", "fr"),
}
URL_TEMPLATE = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{split}.{lang}.gz"
#: sha256 of real copies; files not listed are downloaded unverified, with a warning.
SHA256: Dict[str, str] = {
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
}
#: Bump when what is cached, or how files are read and encoded, changes: old cache entries are then ignored.
FORMAT_VERSION = 1

_FILE_NAME = re.compile(rf"^({'|'.join(SPLITS)})\.([^.]+)(?:\.gz)?$")


# ---- files ----------------------------------------------------------------------------------------
def read_sentences(path: Path) -> List[str]:
    """The sentences of one ``{split}.{lang}[.gz]`` file, one per line (ends stripped, whitespace runs
    collapsed; an empty line gives ``""``). Raises :class:`DataFormatError` naming the file (and line)
    for an unreadable gzip file or invalid UTF-8."""
    path = Path(path)
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise unreadable(path, "gzip file", err) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}:{line}: invalid UTF-8 ({err.reason}); expected UTF-8 text, one sentence per line"
        ) from None
    # Only "\n" ends a line: str.splitlines would also split on U+2028, U+0085, ..., which may occur
    # inside a sentence, and would misalign the two languages.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline ending the last line opens no new one
    return [" ".join(line.split()) for line in lines]


def split_file(root: Path, split: str, lang: str) -> Optional[Path]:
    """``root/{split}.{lang}.gz``, else ``root/{split}.{lang}``, else ``None``."""
    for name in (f"{split}.{lang}.gz", f"{split}.{lang}"):
        if (root / name).is_file():
            return root / name
    return None


def languages_in(root: Path) -> List[str]:
    """Language codes of the ``{split}.{lang}[.gz]`` files in ``root`` (any code, sorted)."""
    found = {m.group(2) for p in Path(root).iterdir() if (m := _FILE_NAME.match(p.name)) and p.is_file()}
    return sorted(found)


# ---- datasets and batches -------------------------------------------------------------------------
class TranslationPairs(Dataset):
    """Tokenized sentence pairs stored flat (see :func:`~datamodules.tokenizers.pack`). Item ``i`` is
    ``{"src": (n,) long, "tgt": (m + 2,) long with <bos>/<eos>, "src_text", "tgt_text", "index"}``.
    ``rows`` selects a subset of the stored pairs (the training pairs kept by ``max_train_tokens``)."""

    def __init__(self, split: Dict, rows: Optional[Tensor] = None) -> None:
        self.split = split
        self.rows = torch.arange(len(split["src_text"])) if rows is None else torch.as_tensor(rows, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def src_lengths(self) -> Tensor:
        return self.split["src_offsets"].diff()[self.rows]

    @property
    def tgt_lengths(self) -> Tensor:
        """Target lengths without ``<bos>`` / ``<eos>``."""
        return self.split["tgt_offsets"].diff()[self.rows]

    @property
    def lengths(self) -> Tensor:
        """What batches are bucketed by: the source length."""
        return self.src_lengths

    @property
    def index(self) -> Tensor:
        """0-based line of every pair in its split's files."""
        return self.split["index"][self.rows]

    def __getitem__(self, i: int) -> Dict:
        r = int(self.rows[i])
        s = self.split
        src = s["src"][s["src_offsets"][r] : s["src_offsets"][r + 1]].long()
        body = s["tgt"][s["tgt_offsets"][r] : s["tgt_offsets"][r + 1]].long()
        tgt = torch.cat([torch.tensor([BOS_ID]), body, torch.tensor([EOS_ID])])
        return {"src": src, "tgt": tgt, "src_text": s["src_text"][r], "tgt_text": s["tgt_text"][r], "index": int(s["index"][r])}


def translation_collate(items: List[Dict]) -> Dict:
    """Pad sources and targets with ``<pad>`` = 0 to the longest of the batch (see the module docstring)."""
    src_lengths = torch.tensor([len(x["src"]) for x in items], dtype=torch.long)
    tgt_lengths = torch.tensor([len(x["tgt"]) for x in items], dtype=torch.long)
    # At least one column even if every source is empty: a (B, 0) tensor breaks embedding/RNN code paths.
    src = torch.full((len(items), max(1, int(src_lengths.max()))), PAD_ID, dtype=torch.long)
    tgt = torch.full((len(items), int(tgt_lengths.max())), PAD_ID, dtype=torch.long)
    for row, item in enumerate(items):
        src[row, : len(item["src"])] = item["src"]
        tgt[row, : len(item["tgt"])] = item["tgt"]
    return {
        "src": src,
        "src_lengths": src_lengths,
        "tgt": tgt,
        "tgt_lengths": tgt_lengths,
        "src_text": [x["src_text"] for x in items],
        "tgt_text": [x["tgt_text"] for x in items],
        "index": torch.tensor([x["index"] for x in items], dtype=torch.long),
    }


def _line_list(numbers: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", ... ({len(numbers) - limit} more)" if len(numbers) > limit else "")


# ---- the datamodule -------------------------------------------------------------------------------
class Multi30kDataModule(TextDataModule):
    """Multi30k task-1 sentence pairs → padded translation batches (see the module docstring).

    After ``setup`` it exposes ``source_tokenizer_json`` / ``target_tokenizer_json`` (the same string
    with a joint BPE vocabulary), ``source_lang`` / ``target_lang``, ``datasets`` (``train``, ``val``,
    ``test``: :class:`TranslationPairs`) and ``dropped`` (training pairs dropped: ``empty``,
    ``too_long``).
    """

    name = "multi30k"

    collate_fn = staticmethod(translation_collate)

    def __init__(
        self,
        root: Optional[str] = None,
        source_lang: str = "de",
        target_lang: str = "en",
        test_set: str = "test_2016_flickr",
        tokenizer: str = "bpe",
        joint_vocab: bool = True,
        vocab_size: int = 8000,
        lowercase: bool = False,
        max_train_tokens: Optional[int] = 64,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            root: folder holding ``{split}.{lang}.gz`` (or the same names without ``.gz``); ``None`` =
                download them into ``data_dir()/"multi30k"``.
            source_lang, target_lang: two different codes among ``de``, ``en``, ``fr``, ``cs``.
            test_set: the split served as ``test`` (one of :data:`TEST_SETS`).
            tokenizer: ``bpe`` (reversible subwords) or ``word`` (word-level, approximate detokenization).
            joint_vocab: ``bpe`` only: one tokenizer for both languages (``False``: one per side).
            vocab_size: per tokenizer, including the 4 special tokens.
            lowercase: lowercase before tokenizing (the reference texts stay as they are).
            max_train_tokens: training pairs with more tokens on either side are dropped; ``None`` = keep all.
            **kwargs: the other arguments of :class:`~datamodules.text.TextDataModule` (min_frequency,
                batch_size, eval_batch_size, bucket, bucket_batches, seed, cache_dir, num_workers).
        """
        if test_set not in TEST_SETS:
            raise ValueError(f"unknown test_set {test_set!r}: expected one of {', '.join(TEST_SETS)}")
        for lang in (source_lang, target_lang):
            if lang not in LANGUAGES:
                found = ""
                if root is not None and Path(root).expanduser().is_dir():
                    found = f"; languages found in {root}: {', '.join(languages_in(Path(root).expanduser())) or 'none'}"
                raise ValueError(f"unknown language {lang!r}: Multi30k languages are {', '.join(LANGUAGES)}{found}")
        if source_lang == target_lang:
            raise ValueError(f"source_lang and target_lang must differ, both are {source_lang!r}")
        if root is None:
            for split in ("train", "val", test_set):
                for lang in (source_lang, target_lang):
                    if lang not in PUBLISHED[split]:
                        raise ValueError(f"Multi30k has no {lang!r} for {split}: it publishes {', '.join(PUBLISHED[split])}")
        if max_train_tokens is not None and max_train_tokens < 1:
            raise ValueError(f"max_train_tokens must be >= 1 or None, got {max_train_tokens}")
        super().__init__(root=root, tokenizer=tokenizer, vocab_size=vocab_size, lowercase=lowercase, **kwargs)
        self.source_lang, self.target_lang = source_lang, target_lang
        self.source_tokenizer_json: Optional[str] = None
        self.target_tokenizer_json: Optional[str] = None
        self.dropped: Dict[str, int] = {}

    @property
    def joint(self) -> bool:
        """Whether one tokenizer serves both sides (``joint_vocab`` with ``bpe``)."""
        return bool(self.hparams.joint_vocab) and self.hparams.tokenizer == "bpe"

    @property
    def file_splits(self) -> Dict[str, str]:
        """Datamodule split → file split: ``{"train": "train", "val": "val", "test": test_set}``."""
        return {"train": "train", "val": "val", "test": self.hparams.test_set}

    # -- input files --------------------------------------------------------------------------------
    def input_files(self) -> Dict[Tuple[str, str], Path]:
        """``{(file split, lang): path}`` of the six files used, downloading them if ``root`` is ``None``."""
        langs = (self.source_lang, self.target_lang)
        splits = list(self.file_splits.values())
        files: Dict[Tuple[str, str], Path] = {}
        if self.hparams.root is None:
            folder = data_dir() / "multi30k"
            for split in splits:
                for lang in langs:
                    name = f"{split}.{lang}.gz"
                    sha256 = SHA256.get(name)
                    if sha256 is None:
                        warnings.warn(
                            f"no checksum is pinned for {name}: it is downloaded (or an existing copy in {folder} "
                            "reused) without verification; add its sha256 to datamodules.multi30k.SHA256 to pin it"
                        )
                    files[split, lang] = fetch(URL_TEMPLATE.format(split=split, lang=lang), sha256, filename=name, folder=folder)
            return files
        root = Path(self.hparams.root).expanduser()
        if not root.is_dir():
            raise MissingDataError(f"Multi30k root {root} is not a folder (expected one holding {{split}}.{{lang}}.gz files)")
        found = languages_in(root)
        for lang in langs:
            if lang not in found:
                raise MissingDataError(
                    f"no {lang!r} files in {root}: languages found there: {', '.join(found) or 'none'} "
                    f"(Multi30k languages: {', '.join(LANGUAGES)})"
                )
        for split in splits:
            for lang in langs:
                path = split_file(root, split, lang)
                if path is None:
                    hint = (
                        "" if lang in PUBLISHED[split] else f"; Multi30k publishes {split} only in {', '.join(PUBLISHED[split])}"
                    )
                    raise MissingDataError(f"{root / f'{split}.{lang}.gz'} not found (nor {split}.{lang} without .gz){hint}")
                files[split, lang] = path
        return files

    # -- building -----------------------------------------------------------------------------------
    @property
    def settings(self) -> Dict:
        hp = self.hparams
        return {
            "module": type(self).__name__,
            "format": FORMAT_VERSION,
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "test_set": hp.test_set,
            "tokenizer": hp.tokenizer,
            "joint": self.joint,
            "vocab_size": hp.vocab_size,
            "min_frequency": hp.min_frequency,
            "lowercase": hp.lowercase,
        }

    def _read_pairs(self, split: str) -> Tuple[List[str], List[str], Path, Path]:
        src_path, tgt_path = self._files[split, self.source_lang], self._files[split, self.target_lang]
        src, tgt = read_sentences(src_path), read_sentences(tgt_path)
        for path, lines in ((src_path, src), (tgt_path, tgt)):
            if not lines:
                raise DataFormatError(f"{path}: no lines (expected one sentence per line)")
        if len(src) != len(tgt):
            raise DataFormatError(
                f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: the two languages of "
                f"{split} must be line-aligned translations"
            )
        return src, tgt, src_path, tgt_path

    def _build(self) -> Dict:
        hp = self.hparams
        raw = {name: self._read_pairs(split) for name, split in self.file_splits.items()}
        train_src, train_tgt, train_src_path, train_tgt_path = raw["train"]
        nonempty = [i for i in range(len(train_src)) if train_src[i] and train_tgt[i]]
        if not nonempty:
            raise DataFormatError(f"{train_src_path} and {train_tgt_path}: no training pair with both sentences non-empty")
        src_texts = [train_src[i] for i in nonempty]
        tgt_texts = [train_tgt[i] for i in nonempty]
        kw = dict(kind=hp.tokenizer, vocab_size=hp.vocab_size, min_frequency=hp.min_frequency, lowercase=hp.lowercase)
        if self.joint:
            source_tok = target_tok = train_translation_tokenizer(src_texts + tgt_texts, **kw)
        else:
            source_tok = train_translation_tokenizer(src_texts, **kw)
            target_tok = train_translation_tokenizer(tgt_texts, **kw)

        splits, notes, dropped_empty = {}, [], 0
        for name, (src, tgt, src_path, tgt_path) in raw.items():
            src_ids, tgt_ids = encode_texts(source_tok, src), encode_texts(target_tok, tgt)
            rows = list(range(len(src)))
            if name == "train":
                # An empty side teaches nothing (and an empty source cannot be encoded by an RNN): drop the
                # pair. Val/test keep every line so that outputs line up with the files.
                rows = [i for i in rows if src_ids[i] and tgt_ids[i]]
                dropped_empty = len(src) - len(rows)
                if dropped_empty:
                    where = [
                        f"{path}: {len(bad)} empty line(s) (line {_line_list(bad)})"
                        for path, ids in ((src_path, src_ids), (tgt_path, tgt_ids))
                        if (bad := [i + 1 for i, x in enumerate(ids) if not x])
                    ]
                    notes.append(
                        f"dropped {dropped_empty} of {len(src)} training pairs with an empty sentence "
                        f"(or one without tokens after normalization): {'; '.join(where)}"
                    )
                if not rows:
                    raise DataFormatError(f"{src_path} and {tgt_path}: no training pair left with tokens on both sides")
            src_flat, src_offsets = pack([src_ids[i] for i in rows])
            tgt_flat, tgt_offsets = pack([tgt_ids[i] for i in rows])
            splits[name] = {
                "src": src_flat,
                "src_offsets": src_offsets,
                "tgt": tgt_flat,
                "tgt_offsets": tgt_offsets,
                "src_text": [src[i] for i in rows],
                "tgt_text": [tgt[i] for i in rows],
                "index": torch.tensor(rows, dtype=torch.long),
            }
        return {
            "source_tokenizer_json": source_tok.to_str(),
            "target_tokenizer_json": target_tok.to_str(),
            "notes": notes,
            "dropped_empty": dropped_empty,
            "splits": splits,
        }

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        data = self.load()
        for note in data["notes"]:
            # Re-issued on every run (not only when the cache is built) so a cache hit does not hide it.
            warnings.warn(note)
        self.source_tokenizer_json = data["source_tokenizer_json"]
        self.target_tokenizer_json = data["target_tokenizer_json"]
        splits = data["splits"]
        train = TranslationPairs(splits["train"])
        too_long, limit = 0, self.hparams.max_train_tokens
        if limit is not None:
            keep = ((train.src_lengths <= limit) & (train.tgt_lengths <= limit)).nonzero().flatten()
            too_long = len(train) - len(keep)
            if not len(keep):
                raise InputError(f"max_train_tokens={limit} drops all {len(train)} training pairs")
            rank_zero_info(
                f"Multi30k {self.source_lang}-{self.target_lang}: dropped {too_long} of {len(train)} training pairs "
                f"with more than {limit} tokens on a side (max_train_tokens)"
            )
            train = TranslationPairs(splits["train"], keep)
        self.dropped = {"empty": int(data["dropped_empty"]), "too_long": too_long}
        self.datasets = {"train": train, "val": TranslationPairs(splits["val"]), "test": TranslationPairs(splits["test"])}

    # -- tokenizers for the model -------------------------------------------------------------------
    @property
    def source_tokenizer(self) -> Tokenizer:
        self.setup()
        return load_tokenizer(self.source_tokenizer_json)

    @property
    def target_tokenizer(self) -> Tokenizer:
        self.setup()
        return load_tokenizer(self.target_tokenizer_json)

    @property
    def source_vocab_size(self) -> int:
        return self.source_tokenizer.get_vocab_size()

    @property
    def target_vocab_size(self) -> int:
        return self.target_tokenizer.get_vocab_size()
