"""Character corpora: contiguous split, vocabulary, streams for truncated BPTT, DDP sharding."""

from types import SimpleNamespace

import pytest
import torch

from datamodules.char_corpus import CharCorpusDataModule, StreamWindows, batchify, read_corpus
from datamodules.download import DataFormatError
from datamodules.tokenizers import UNK_CHAR, decode_chars, encode_chars
from tests.conftest import shared_data


def test_windows_continue_each_stream(tiny_corpus):
    dm = CharCorpusDataModule(str(tiny_corpus), batch_size=4, seq_len=16, max_chars=None)
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataloader())
    # row b of batch k+1 starts where row b of batch k stopped
    for a, b in zip(batches, batches[1:]):
        assert torch.equal(a["targets"][:, -1], b["ids"][:, 0])
    # targets are inputs shifted by one character
    assert torch.equal(batches[0]["ids"][:, 1:], batches[0]["targets"][:, :-1])
    # the streams together cover the training text in order
    text = tiny_corpus.read_text()
    train_text = text[: int(len(text) * 0.9)]
    row0 = torch.cat([batches[0]["ids"][0, :1]] + [b["targets"][0] for b in batches])
    assert decode_chars(row0, dm.vocab) == train_text[: row0.numel()]


def test_validation_is_the_last_tenth_and_unseen_chars_map_to_unknown(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("ab" * 500 + "abz" * 20, encoding="utf-8")  # 'z' only in the last 10%
    dm = CharCorpusDataModule(str(path), batch_size=2, seq_len=8, max_chars=None)
    dm.setup()
    assert dm.vocab == [UNK_CHAR, "a", "b"]
    assert (dm.val_streams == 0).any()  # every 'z' became the unknown symbol
    assert encode_chars("az", dm.vocab).tolist() == [1, 0]


def test_ddp_ranks_get_disjoint_streams(tiny_corpus):
    rows = []
    for rank in range(2):
        dm = CharCorpusDataModule(str(tiny_corpus), batch_size=3, seq_len=8, max_chars=None)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        dm.setup()
        rows.append(dm.train_streams)
    assert rows[0].shape == rows[1].shape == (3, rows[0].shape[1])
    text = tiny_corpus.read_text()
    whole = batchify(encode_chars(text[: int(len(text) * 0.9)], dm.vocab), 6)
    assert torch.equal(torch.cat(rows), whole)


def test_python_stdlib_needs_no_download():
    text = read_corpus("python-stdlib", max_chars=50_000)
    assert len(text) == 50_000 and "def " in text and "# file: " in text


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a built-in"):
        read_corpus(str(tmp_path / "missing.txt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no text files"):
        read_corpus(str(empty))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello \xff\xfe world" * 20)
    with pytest.raises(DataFormatError, match=r"bad.txt:1: invalid UTF-8 \(byte 6: invalid start byte\); expected UTF-8 text"):
        read_corpus(str(bad))
    with pytest.raises(ValueError, match="cannot fill"):
        batchify(torch.arange(10), 8)
    with pytest.raises(ValueError, match="val_fraction"):
        CharCorpusDataModule(val_fraction=1.5)


def test_windows_of_a_short_tail():
    windows = list(StreamWindows(torch.arange(20).view(2, 10), seq_len=4))
    assert [w["ids"].shape[1] for w in windows] == [4, 4, 1]
    assert len(StreamWindows(torch.arange(20).view(2, 10), seq_len=4)) == 3


def test_real_tinyshakespeare_split():
    path = shared_data("tinyshakespeare", "input.txt")
    dm = CharCorpusDataModule(str(path), batch_size=64, seq_len=128, max_chars=None)
    dm.setup()
    assert dm.num_train_chars + dm.num_val_chars == 1_115_394
    assert dm.vocab_size == 66  # 65 characters + the unknown symbol
