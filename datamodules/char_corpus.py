"""Character corpora batched into parallel streams for truncated BPTT.

The text is split contiguously (the last ``val_fraction`` of the characters is validation), encoded
with a character vocabulary built on the training part, and cut into ``batch_size`` parallel streams.
Batch ``k`` holds window ``k`` of every stream, so row ``b`` of batch ``k+1`` continues row ``b`` of
batch ``k`` and a language model can carry its hidden state from one batch to the next.

Under DDP every rank gets its own ``batch_size`` streams (the text is cut into
``world_size * batch_size`` streams), so no rank's state ever meets another rank's text.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .download import fetch, read_text
from .errors import DataFormatError, MissingDataError
from .loaders import SplitLoaders
from .tokenizers import build_char_vocab, encode_chars

BUILTIN = {
    "tinyshakespeare": {
        "url": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "sha256": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "filename": "tinyshakespeare.txt",
    },
}
TEXT_SUFFIXES = (".txt", ".py", ".md", ".rst", ".c", ".h", ".tex", ".html")


def python_stdlib_text(max_chars: Optional[int]) -> str:
    """The running Python's own standard-library source (``*.py`` outside tests and site-packages),
    files in sorted order: a real corpus that needs no download."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
    parts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if skip.intersection(path.relative_to(root).parts):
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a handful of stdlib files are deliberately not UTF-8
        parts.append(f"# file: {path.relative_to(root)}\n{source}\n")
        total += len(parts[-1])
        if max_chars is not None and total >= max_chars:
            break
    if not parts:
        raise MissingDataError(f"no Python source found under {root} for the 'python-stdlib' corpus")
    return "".join(parts)


def read_corpus(corpus: str, max_chars: Optional[int] = None) -> str:
    """A built-in name (``tinyshakespeare``, ``python-stdlib``), a text file, a folder of text files,
    or an http(s) URL."""
    if corpus == "python-stdlib":
        text = python_stdlib_text(max_chars)
    elif corpus in BUILTIN:
        spec = BUILTIN[corpus]
        text = _read_text(fetch(spec["url"], spec["sha256"], filename=spec["filename"]))
    elif corpus.startswith(("http://", "https://")):
        text = _read_text(fetch(corpus, None))
    else:
        path = Path(corpus).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
            if not files:
                raise MissingDataError(f"corpus folder {path} holds no text files ({', '.join(TEXT_SUFFIXES)})")
            text = "".join(_read_text(p) for p in files)
        elif path.is_file():
            text = _read_text(path)
        else:
            raise MissingDataError(
                f"corpus {corpus!r} is not a built-in ({', '.join(['python-stdlib', *BUILTIN])}), "
                "an existing file or folder, or an http(s) URL"
            )
    if max_chars is not None:
        text = text[:max_chars]
    if len(text) < 100:
        raise DataFormatError(f"corpus {corpus!r} has only {len(text)} characters; a language model needs more")
    return text


def _read_text(path: Path) -> str:
    return read_text(path, "UTF-8 text (a character corpus)")


def batchify(ids: Tensor, streams: int) -> Tensor:
    """Cut a 1-D id sequence into ``streams`` contiguous rows, dropping the ragged tail."""
    length = ids.numel() // streams
    if length < 2:
        raise DataFormatError(f"{ids.numel()} characters cannot fill {streams} streams; use a smaller batch_size")
    return ids[: streams * length].view(streams, length)


class StreamWindows(IterableDataset):
    """Consecutive windows over parallel streams: yields ``{"ids", "targets", "index"}``, ``ids`` and
    ``targets`` of shape ``(streams, <= seq_len)``, targets shifted by one character. Already batched.
    ``index`` ``(streams,)`` is where each row's window starts in the split's text (characters);
    ``first_row`` is the number of this rank's first stream among all ranks' streams. ``resume_at``:
    the first iteration starts at that window (a run resumed mid-epoch); later ones at the first."""

    def __init__(self, streams: Tensor, seq_len: int, first_row: int = 0, resume_at: int = 0) -> None:
        self.streams, self.seq_len, self.first_row, self.resume_at = streams, seq_len, first_row, resume_at

    def __len__(self) -> int:
        return -(-(self.streams.shape[1] - 1) // self.seq_len)

    def __iter__(self) -> Iterator[Dict[str, Tensor]]:
        rows, length = self.streams.shape
        row_start = (torch.arange(rows) + self.first_row) * length
        first, self.resume_at = self.resume_at, 0
        for start in range(first * self.seq_len, length - 1, self.seq_len):
            chunk = self.streams[:, start : start + self.seq_len + 1]
            yield {"ids": chunk[:, :-1], "targets": chunk[:, 1:], "index": row_start + start}


class CharCorpusDataModule(SplitLoaders, L.LightningDataModule):
    """A character corpus in ``batch_size`` parallel streams per rank (see the module docstring).
    After ``setup`` it exposes ``vocab`` (``[UNK_CHAR] + characters``) for the model; the test and
    predict splits are the validation text."""

    def __init__(
        self,
        corpus: str = "python-stdlib",
        batch_size: int = 64,
        seq_len: int = 128,
        val_fraction: float = 0.1,
        max_chars: Optional[int] = 2_000_000,
    ) -> None:
        """
        Args:
            corpus: ``python-stdlib`` (offline default), ``tinyshakespeare`` (downloaded, sha256-checked),
                a path to a text file or a folder of text files, or an http(s) URL.
            batch_size: parallel streams per rank (rows of a batch).
            seq_len: truncated-BPTT window: characters per batch row.
            val_fraction: the last fraction of the characters, held out for validation.
            max_chars: keep only the first ``max_chars`` characters (``None`` = all).
        """
        super().__init__()
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.vocab: Optional[List[str]] = None

    def prepare_data(self) -> None:
        read_corpus(self.hparams.corpus, self.hparams.max_chars)  # downloads once, on one process

    def setup(self, stage: Optional[str] = None) -> None:
        if self.vocab is not None:
            return
        text = read_corpus(self.hparams.corpus, self.hparams.max_chars)
        split = int(len(text) * (1 - self.hparams.val_fraction))
        train_text, val_text = text[:split], text[split:]
        self.vocab = build_char_vocab(train_text)
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        rows = slice(rank * self.hparams.batch_size, (rank + 1) * self.hparams.batch_size)
        streams = world * self.hparams.batch_size
        self.train_streams = batchify(encode_chars(train_text, self.vocab), streams)[rows]
        self.val_streams = batchify(encode_chars(val_text, self.vocab), streams)[rows]
        self.num_train_chars, self.num_val_chars = len(train_text), len(val_text)
        seq_len, first = self.hparams.seq_len, rows.start
        val = StreamWindows(self.val_streams, seq_len, first)
        self.datasets = {"train": StreamWindows(self.train_streams, seq_len, first), "val": val, "test": val}

    @property
    def vocab_size(self) -> int:
        if self.vocab is None:
            self.setup()
        return len(self.vocab)

    # batch_size=None: the windows are already batches, and an IterableDataset is never given a
    # DistributedSampler by Lightning (which would shuffle windows across ranks and break the carry).
    # Resuming mid-epoch, the training windows start after those the checkpoint had trained on (the
    # language model restores the state it carried to there); no order to restore: nothing is shuffled.
    def make_loader(self, dataset: Dataset, mode: str) -> DataLoader:
        resume = self.take_resume() if mode == "train" else None
        if resume is not None:
            dataset = StreamWindows(dataset.streams, dataset.seq_len, dataset.first_row, resume_at=resume[1])
        return DataLoader(dataset, batch_size=None)


@torch.no_grad()
def score_char_lm(
    model,
    corpus: str,
    batch_size: int = 64,
    seq_len: int = 128,
    val_fraction: float = 0.1,
    max_windows: Optional[int] = None,
    max_chars: Optional[int] = None,
) -> Dict[str, float]:
    """Validation loss of a character language model on the last ``val_fraction`` of ``corpus``, read
    exactly as in training (this module's datamodule: ``batch_size`` parallel streams, windows of
    ``seq_len``, state carried from window to window): mean cross-entropy in nats per character over
    every predicted character (``max_windows``: only the first windows of every stream), plus
    bits/char and perplexity. ``max_chars``: the recipe's cut of the corpus (the validation part is
    the last ``val_fraction`` of what is kept; ``None`` = all of it). ``model`` is any module with ``vocab`` and ``model(ids, state) ->
    (logits, state)`` (the zoo's CharLanguageModel); how the pretrained card's number is measured."""
    import math

    data = CharCorpusDataModule(
        corpus=corpus, batch_size=batch_size, seq_len=seq_len, val_fraction=val_fraction, max_chars=max_chars
    )
    data.setup("validate")
    if list(data.vocab) != list(model.vocab):
        raise DataFormatError(
            f"{corpus}: its training-part vocabulary ({len(data.vocab)} characters) differs from the model's ({len(model.vocab)})"
        )
    loss, count = validation_nll(model, data, max_windows)
    return {"val_loss": loss, "val_bpc": loss / math.log(2), "val_ppl": math.exp(loss), "characters": count}


@torch.no_grad()
def validation_nll(model, data: "CharCorpusDataModule", max_windows: Optional[int] = None) -> Tuple[float, int]:
    """Mean cross-entropy (nats per character) of ``model`` over ``data``'s validation windows, the
    state carried from window to window as in training, and the number of characters scored
    (``max_windows``: only the first windows of every stream)."""
    import torch.nn.functional as F

    model.eval()
    total, count, state = 0.0, 0, None
    for i, batch in enumerate(data.val_dataloader()):
        if max_windows is not None and i >= max_windows:
            break
        logits, state = model(batch["ids"], state)
        total += float(F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten(), reduction="sum"))
        count += batch["targets"].numel()
    return total / count, count
