"""Multi30k datamodule: fixtures in the raw format (gzip'd sentences, one per line) written here, the
download path against a local HTTP server, bad input, and the real de/en files in ../shared/data
(skipped where absent)."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import unicodedata
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import pytest
import torch

import datamodules.multi30k as m30k
from datamodules.download import ChecksumError, DataFormatError
from datamodules.multi30k import Multi30kDataModule, read_sentences, translation_collate
from datamodules.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    detokenize,
    encode_sentence,
    join_words,
    train_translation_tokenizer,
)
from tests.conftest import shared_data
from tests.fixtures import corpus, fixture_files, gz, sentence_pair, write_files
from tests.test_download import Server


# German/English word pairs: a fixture sentence is a random walk over them, so the two sides align.
def lines_of(data: bytes) -> List[str]:
    return gzip.decompress(data).decode().split("\n")[:-1]


@pytest.fixture(autouse=True)
def _isolated_home(zoo_home_env: Path) -> Path:
    return zoo_home_env


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_files(tmp_path / "multi30k", fixture_files())


def make(root, tmp_path: Path, setup: bool = True, **kw) -> Multi30kDataModule:
    kw.setdefault("min_frequency", 1)
    kw.setdefault("vocab_size", 300)
    kw.setdefault("batch_size", 8)
    dm = Multi30kDataModule(root=None if root is None else str(root), cache_dir=str(tmp_path / "cache"), **kw)
    if setup:
        dm.setup()
    return dm


# ---- tokenizers -----------------------------------------------------------------------------------
def test_bpe_round_trip_and_special_ids():
    de, en = corpus(200, 3)
    tok = train_translation_tokenizer(de + en, "bpe", vocab_size=120, min_frequency=2)
    assert [tok.id_to_token(i) for i in range(4)] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert tok.get_vocab_size() == 120
    # Exact, including odd spacing and compatibility characters that NFKC folds (ﬁ → fi, full-width A → A).
    texts = de[:50] + en[:50] + ["Ein  Mann ﬁ  Ａ läuft."]
    for text in texts:
        ids = encode_sentence(tok, text)
        assert BOS_ID not in ids and EOS_ID not in ids
        assert detokenize(tok, ids) == unicodedata.normalize("NFKC", text)
    # What a model emits: <bos> and <pad> skipped, everything after <eos> ignored; tensors accepted.
    ids = encode_sentence(tok, en[0])
    assert detokenize(tok, torch.tensor([BOS_ID, *ids, EOS_ID, *ids, PAD_ID])) == en[0]
    assert detokenize(tok, [BOS_ID, EOS_ID]) == ""
    assert detokenize(tok, encode_sentence(tok, "Ein Hund ☃.")) == "Ein Hund <unk>."  # unseen character

    lower = train_translation_tokenizer(de, "bpe", vocab_size=100, min_frequency=1, lowercase=True)
    assert detokenize(lower, encode_sentence(lower, de[1])) == de[1].lower()


def test_word_tokenizer_and_approximate_detokenization():
    de, en = corpus(200, 4)
    tok = train_translation_tokenizer(en, "word", vocab_size=1000, min_frequency=1)
    assert tok.decoder is None and [tok.id_to_token(i) for i in range(4)] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    for text in en[:50]:  # punctuation, in-word hyphens and parentheses of the fixture come back exactly
        assert detokenize(tok, encode_sentence(tok, text)) == text
    ids = encode_sentence(tok, "A zebra runs.")
    assert UNK_ID in ids and detokenize(tok, ids) == "A <unk> runs."
    assert join_words(["a", "man", "'", "s", "hat", "(", "red", ")", ",", "3", ".", "5", "m", "!"]) == "a man's hat (red), 3.5 m!"
    assert join_words(["a", '"', "b", '"']) == 'a " b "'  # approximate: quotes keep their spaces
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        train_translation_tokenizer(en, "char")
    with pytest.raises(ValueError, match="vocab_size"):
        train_translation_tokenizer(en, "bpe", vocab_size=4)


# ---- the datamodule -------------------------------------------------------------------------------
def test_batches_shapes_padding_bos_eos(root, tmp_path):
    dm = make(root, tmp_path)
    assert (dm.source_lang, dm.target_lang) == ("de", "en")
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 120, "val": 15, "test": 12}
    assert dm.source_tokenizer_json == dm.target_tokenizer_json and dm.joint
    src_tok, tgt_tok = dm.source_tokenizer, dm.target_tokenizer
    val_de, val_en = lines_of((root / "val.de.gz").read_bytes()), lines_of((root / "val.en.gz").read_bytes())
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        batch = next(iter(loader))
        assert set(batch) == {"src", "src_lengths", "tgt", "tgt_lengths", "src_text", "tgt_text", "index"}
        B = len(batch["index"])
        assert batch["src"].dtype == batch["tgt"].dtype == batch["index"].dtype == torch.long
        assert batch["src"].shape == (B, int(batch["src_lengths"].max()))
        assert batch["tgt"].shape == (B, int(batch["tgt_lengths"].max()))
        for i in range(B):
            s, t = int(batch["src_lengths"][i]), int(batch["tgt_lengths"][i])
            src, tgt = batch["src"][i], batch["tgt"][i]
            assert (src[s:] == PAD_ID).all() and (src[:s] != PAD_ID).all()
            assert BOS_ID not in src.tolist() and EOS_ID not in src.tolist()
            assert tgt[0] == BOS_ID and tgt[t - 1] == EOS_ID and (tgt[t:] == PAD_ID).all()
            assert BOS_ID not in tgt[1 : t - 1].tolist() and EOS_ID not in tgt[1 : t - 1].tolist()
            assert detokenize(tgt_tok, tgt) == batch["tgt_text"][i]
            assert detokenize(src_tok, src) == batch["src_text"][i]
    # val: the texts are the file's lines, and index is the 0-based line.
    for i, line in enumerate(batch["index"].tolist()):
        assert (batch["src_text"][i], batch["tgt_text"][i]) == (val_de[line], val_en[line])
    assert dm.source_vocab_size == dm.target_vocab_size <= 300

    separate = make(root, tmp_path, joint_vocab=False)
    assert separate.source_tokenizer_json != separate.target_tokenizer_json
    assert "Straße" in separate.source_tokenizer.get_vocab() or "▁Straße" in separate.source_tokenizer.get_vocab()
    assert not any("ß" in t for t in separate.target_tokenizer.get_vocab())  # English side only
    word = make(root, tmp_path, tokenizer="word")  # joint_vocab is ignored for word: one vocabulary per side
    assert not word.joint and word.source_tokenizer_json != word.target_tokenizer_json
    batch = next(iter(word.val_dataloader()))
    assert detokenize(word.target_tokenizer, batch["tgt"][0]) == batch["tgt_text"][0]
    reverse = make(root, tmp_path, source_lang="en", target_lang="de")
    assert reverse.datasets["val"].split["src_text"] == val_en


def test_bucketing_keeps_every_example_once(root, tmp_path):
    dm = make(root, tmp_path, batch_size=7, bucket_batches=3, max_train_tokens=None)
    train = dm.datasets["train"]
    for epoch in (0, 1):
        loader = dm.train_dataloader()
        loader.batch_sampler.set_epoch(epoch)
        seen = [i for b in loader for i in b["index"].tolist()]
        assert sorted(seen) == sorted(train.index.tolist()) == list(range(120))
    val = [b for b in dm.val_dataloader()]
    lengths = torch.cat([b["src_lengths"] for b in val])
    assert sorted(torch.cat([b["index"] for b in val]).tolist()) == list(range(15))
    assert (lengths[:-1] >= lengths[1:]).all()  # sorted, longest first, not shuffled
    assert torch.cat([b["index"] for b in dm.predict_dataloader()]).tolist() == list(range(12))  # file order
    plain = make(root, tmp_path, bucket=False, batch_size=7, max_train_tokens=None)
    assert sorted(i for b in plain.train_dataloader() for i in b["index"].tolist()) == list(range(120))
    # Two ranks (as the trainer reports them): disjoint shards, the same number of batches each.
    shards = []
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        shards.append([i for b in dm.train_dataloader() for i in b["index"].tolist()])
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) > 50 and len(shards[1]) > 50


def test_max_train_tokens_filters_train_only(tmp_path):
    files = fixture_files()
    de, en = corpus(120, 0)
    de[5], en[5] = sentence_pair(random.Random(9), 60)  # far longer than the others
    files["train.de.gz"], files["train.en.gz"] = gz(de), gz(en)
    long_de, long_en = sentence_pair(random.Random(10), 200)  # longer than any training sentence
    vde, ven = corpus(15, 1)
    files["val.de.gz"], files["val.en.gz"] = gz(vde[:3] + [long_de] + vde[4:]), gz(ven[:3] + [long_en] + ven[4:])
    root = write_files(tmp_path / "m", files)
    dm = make(root, tmp_path, max_train_tokens=40)
    assert len(dm.datasets["train"]) == 119 and 5 not in dm.datasets["train"].index.tolist()
    assert dm.dropped == {"empty": 0, "too_long": 1}
    assert int(dm.datasets["train"].src_lengths.max()) <= 40 and int(dm.datasets["train"].tgt_lengths.max()) <= 40
    val = dm.datasets["val"]
    assert len(val) == 15 and int(val.src_lengths[3]) >= 200  # never filtered, never truncated
    assert detokenize(dm.target_tokenizer, val[3]["tgt"]) == long_en
    everything = make(root, tmp_path, max_train_tokens=None)
    assert len(everything.datasets["train"]) == 120 and everything.dropped["too_long"] == 0
    with pytest.raises(ValueError, match="max_train_tokens"):
        make(root, tmp_path, max_train_tokens=0)


def test_cache_hit_does_not_retokenize(root, tmp_path, monkeypatch):
    first = make(root, tmp_path)
    assert len(list((tmp_path / "cache").glob("multi30k-*.pt"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("re-read or re-tokenized on a cache hit")

    monkeypatch.setattr(m30k, "train_translation_tokenizer", boom)
    monkeypatch.setattr(m30k, "read_sentences", boom)
    second = make(root, tmp_path, max_train_tokens=20)  # applied when loading: still a hit (boom was not called)
    assert second.source_tokenizer_json == first.source_tokenizer_json
    assert second.datasets["val"].split["src"].equal(first.datasets["val"].split["src"])
    assert len(second.datasets["train"]) <= len(first.datasets["train"])
    for changed in (dict(vocab_size=200), dict(lowercase=True), dict(test_set="test_2017_flickr")):
        with pytest.raises((AssertionError, FileNotFoundError)):
            make(root, tmp_path, **changed)  # another setting (or file): another entry, so it is rebuilt
    de, en = corpus(120, 7)
    (root / "train.de.gz").write_bytes(gz(de))  # the file changed: rebuilt
    with pytest.raises(AssertionError, match="cache hit"):
        make(root, tmp_path)


def test_plain_text_files_and_line_handling(tmp_path):
    files = fixture_files()
    root = tmp_path / "plain"
    root.mkdir()
    for name, data in files.items():
        (root / name[: -len(".gz")]).write_bytes(gzip.decompress(data))
    # No final newline, CRLF line ends, stray spaces, and a U+2028 inside a sentence: whitespace to the
    # sentence, but not a line break (the two languages stay aligned).
    (root / "val.en").write_bytes(
        (b"\r\n".join(l.encode() for l in lines_of(files["val.en.gz"])[:-1]) + b"\r\n  A  man\xe2\x80\xa8runs.  ")
    )
    dm = make(root, tmp_path)
    val = dm.datasets["val"].split
    assert len(val["tgt_text"]) == 15 and val["tgt_text"][-1] == "A man runs."
    assert val["tgt_text"][0] == lines_of(files["val.en.gz"])[0]
    assert read_sentences(root / "val.de") == lines_of(files["val.de.gz"])


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_arguments(root, tmp_path):
    with pytest.raises(ValueError, match=r"unknown language 'xx'.*de, en, fr, cs.*found in .*multi30k: de, en"):
        make(root, tmp_path, source_lang="xx", setup=False)
    with pytest.raises(FileNotFoundError, match=r"no 'fr' files in .*multi30k: languages found there: de, en.*de, en, fr, cs"):
        make(root, tmp_path, target_lang="fr")
    with pytest.raises(ValueError, match="must differ"):
        make(root, tmp_path, source_lang="en", target_lang="en", setup=False)
    with pytest.raises(ValueError, match=r"unknown test_set 'test_2019'.*test_2016_flickr, test_2017_flickr"):
        make(root, tmp_path, test_set="test_2019", setup=False)
    with pytest.raises(ValueError, match=r"no 'cs' for test_2017_mscoco: it publishes de, en, fr"):
        make(None, tmp_path, source_lang="cs", test_set="test_2017_mscoco", setup=False)
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        make(root, tmp_path, tokenizer="sentencepiece", setup=False)


def test_missing_files(root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"test_2017_flickr\.de\.gz not found"):
        make(root, tmp_path, test_set="test_2017_flickr")
    (root / "val.en.gz").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "val.en.gz"))):
        make(root, tmp_path)
    (root / "test_2017_flickr.cs.gz").write_bytes(gz(["x"]))  # cs is now "found", but not for val
    with pytest.raises(FileNotFoundError, match=r"train\.cs\.gz not found"):
        make(root, tmp_path, source_lang="cs")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        make(tmp_path / "nowhere", tmp_path)
    assert not list((tmp_path / "cache").glob("*"))


def test_line_count_mismatch(root, tmp_path):
    de, _ = corpus(16, 1)
    (root / "val.de.gz").write_bytes(gz(de))
    with pytest.raises(DataFormatError, match=r"val\.de\.gz has 16 lines but .*val\.en\.gz has 15"):
        make(root, tmp_path)
    assert not list((tmp_path / "cache").glob("*"))


def test_invalid_utf8_and_gzip(root, tmp_path):
    de, _ = corpus(120, 0)
    data = ("\n".join(de[:6]) + "\n").encode() + b"Ein caf\xe9 Mann.\n" + ("\n".join(de[7:]) + "\n").encode()
    (root / "train.de.gz").write_bytes(gzip.compress(data))
    with pytest.raises(DataFormatError, match=r"train\.de\.gz:7: invalid UTF-8"):
        make(root, tmp_path)
    (root / "train.de.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataFormatError, match=r"train\.de\.gz: not a readable gzip file"):
        make(root, tmp_path)
    (root / "train.de.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(DataFormatError, match=r"train\.de\.gz: no lines"):
        make(root, tmp_path)
    assert not list((tmp_path / "cache").glob("*"))


def test_empty_lines(tmp_path):
    files = fixture_files()
    de, en = corpus(120, 0)
    de[3], en[10], en[11] = "", "   ", ""
    files["train.de.gz"], files["train.en.gz"] = gz(de), gz(en)
    vde, ven = corpus(15, 1)
    vde[2], ven[4] = "", ""
    files["val.de.gz"], files["val.en.gz"] = gz(vde), gz(ven)
    root = write_files(tmp_path / "m", files)
    with pytest.warns(
        UserWarning,
        match=r"dropped 3 of 120 training pairs.*train\.de\.gz: 1 empty line\(s\) \(line 4\).*"
        r"train\.en\.gz: 2 empty line\(s\) \(line 11, 12\)",
    ):
        dm = make(root, tmp_path)
    assert len(dm.datasets["train"]) == 117 and dm.dropped["empty"] == 3
    assert not {3, 10, 11} & set(dm.datasets["train"].index.tolist())
    val = dm.datasets["val"]
    assert len(val) == 15 and val.index.tolist() == list(range(15))  # kept: indices match the files
    assert int(val.src_lengths[2]) == 0 and val[2]["src_text"] == ""
    assert val[4]["tgt"].tolist() == [BOS_ID, EOS_ID] and val[4]["tgt_text"] == ""
    batch = translation_collate([val[2]])  # a batch of empty sources still has one (padding) column
    assert batch["src"].shape == (1, 1) and batch["src_lengths"].tolist() == [0] and batch["src"][0, 0] == PAD_ID
    assert 2 in [i for b in dm.val_dataloader() for i in b["index"].tolist()]
    with pytest.warns(UserWarning, match="dropped 3 of 120"):  # a cache hit reports it again
        make(root, tmp_path)


# ---- download -------------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path):
    srv = Server(write_files(tmp_path / "srv", fixture_files()))
    yield srv
    srv.stop()


def pin_all_but(server: Server, monkeypatch: pytest.MonkeyPatch, unpinned: str) -> Dict[str, str]:
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in server.root.iterdir() if p.name != unpinned}
    monkeypatch.setattr(m30k, "URL_TEMPLATE", server.url("{split}.{lang}.gz"))
    monkeypatch.setattr(m30k, "SHA256", hashes)
    return hashes


def test_download(server, tmp_path, zoo_home_env, monkeypatch):
    pin_all_but(server, monkeypatch, "test_2016_flickr.en.gz")
    with pytest.warns(UserWarning, match=r"no checksum is pinned for test_2016_flickr\.en\.gz") as record:
        dm = make(None, tmp_path)
    assert len([w for w in record if "checksum" in str(w.message)]) == 1  # the five pinned files pass silently
    folder = zoo_home_env / "data" / "multi30k"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in server.root.iterdir())
    assert sorted(server.requests) == sorted(f"/{p.name}" for p in server.root.iterdir())
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 120, "val": 15, "test": 12}
    server.stop()  # the copies (and the cache) are reused without network
    with pytest.warns(UserWarning, match="no checksum is pinned"):
        again = make(None, tmp_path)
    assert again.source_tokenizer_json == dm.source_tokenizer_json


def test_download_checksum_mismatch(server, tmp_path, zoo_home_env, monkeypatch):
    hashes = pin_all_but(server, monkeypatch, "")
    hashes["train.en.gz"] = hashlib.sha256(b"what the file should have been").hexdigest()
    with pytest.raises(ChecksumError, match=r"checksum mismatch for http://127\.0\.0\.1:\d+/train\.en\.gz"):
        make(None, tmp_path)
    assert not (zoo_home_env / "data" / "multi30k" / "train.en.gz").exists()
    assert not list((tmp_path / "cache").glob("*"))


def test_default_download_is_pinned():
    names = {f"{s}.{lang}.gz" for s in ("train", "val", "test_2016_flickr") for lang in ("de", "en")}
    assert set(m30k.SHA256) == names
    assert m30k.URL_TEMPLATE.format(split="train", lang="de").endswith("/data/task1/raw/train.de.gz")


# ---- real data ------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_multi30k_de_en(tmp_path, monkeypatch):
    data = shared_data("multi30k")
    dm = Multi30kDataModule(root=str(data), cache_dir=str(tmp_path / "cache"), max_train_tokens=None)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 29_000, "val": 1_014, "test": 1_000}
    assert dm.dropped == {"empty": 0, "too_long": 0}
    assert len(json.loads(dm.source_tokenizer_json)["model"]["vocab"]) == 8000
    assert dm.source_tokenizer_json == dm.target_tokenizer_json
    tok = dm.source_tokenizer
    raw_de = gzip.decompress((data / "train.de.gz").read_bytes()).decode().split("\n")
    raw_en = gzip.decompress((data / "train.en.gz").read_bytes()).decode().split("\n")
    train = dm.datasets["train"]
    for i in range(0, 29_000, 145):  # 200 training pairs, both sides: ids -> text gives the sentence back
        item = train[i]
        assert (item["src_text"], item["tgt_text"]) == (" ".join(raw_de[i].split()), " ".join(raw_en[i].split()))
        assert detokenize(tok, item["src"]) == unicodedata.normalize("NFKC", item["src_text"])
        assert detokenize(tok, item["tgt"]) == unicodedata.normalize("NFKC", item["tgt_text"])
        assert item["src"].tolist() == encode_sentence(tok, item["src_text"])

    def boom(*args, **kwargs):
        raise AssertionError("re-read or re-tokenized on a cache hit")

    monkeypatch.setattr(m30k, "train_translation_tokenizer", boom)  # a cache hit, proven without a clock
    monkeypatch.setattr(m30k, "read_sentences", boom)
    default = Multi30kDataModule(root=str(data), cache_dir=str(tmp_path / "cache"))  # max_train_tokens=64
    default.setup()
    assert default.dropped["too_long"] < 20 and len(default.datasets["train"]) > 28_980
    batch = next(iter(default.train_dataloader()))
    assert batch["src"].shape[0] == 64
