"""Hostile and broken files through the real readers: random bytes, invalid UTF-8, empty files, NUL
bytes, arbitrary JSON, truncated and bit-flipped images and videos, a 10 MB single line.

Each reader either works, meaning it returns what the file says (the text decoded, the lines counted,
the rows parsed, an RGB image, uint8 frames), or raises the project's error for a bad file (DataFormatError,
CorruptImageError, VideoDecodeError) with the file's path in the message; never a bare
UnicodeDecodeError, KeyError, IndexError, TypeError or struct.error."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from datamodules import coco_captions, multi30k, tokenizers
from datamodules.ag_news import AGNewsDataModule
from datamodules.char_corpus import read_corpus
from datamodules.download import DataFormatError
from datamodules.images import CorruptImageError, load_image
from datamodules.imdb import IMDBDataModule
from datamodules.video_io import VideoDecodeError, decode_video, load_frame, probe_video
from tests.fixtures import imdb_members, make_video, write_ag_news, write_folder

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEN_MB = 10 * 2**20

# Bytes a broken or hostile file may hold: anything, text with NULs and control characters, valid text
# with invalid UTF-8 spliced in, and the classic edge cases.
HOSTILE = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(lambda t: t.encode("utf-8")),
    st.tuples(
        st.text(max_size=100),
        st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]),
        st.text(max_size=100),
    ).map(lambda t: t[0].encode() + t[1] + t[2].encode()),
    st.sampled_from([b"", b"\0", b"\0" * 4096, b"\xef\xbb\xbf", b"\n" * 50, b"\r\n\r", "\u2028é\x00".encode()]),
)


def outcome(read, path: Path, *errors: type):
    """``read(path)``'s result, or ``None`` when it raised one of ``errors`` naming ``path``."""
    try:
        return read(path)
    except errors as err:
        assert str(path) in str(err), f"the error does not name the file: {err}"
        assert "\n" not in str(err).rstrip(), f"the error is more than one line: {err}"
        return None


def as_text(data: bytes):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---- text files ------------------------------------------------------------------------------------------
@FUZZ
@given(data=HOSTILE)
def test_char_corpus(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("c") / "corpus.txt"
    path.write_bytes(data)
    text = outcome(lambda p: read_corpus(str(p)), path, DataFormatError, ValueError)
    if text is not None:  # works: exactly the decoded text
        assert text == data.decode("utf-8") and len(text) >= 100
    elif as_text(data) is None:
        with pytest.raises(DataFormatError, match=r"corpus\.txt:\d+: invalid UTF-8 \(byte \d+"):
            read_corpus(str(path))


@FUZZ
@given(data=HOSTILE, gz=st.booleans())
def test_multi30k_sentences(tmp_path_factory, data: bytes, gz: bool) -> None:
    path = tmp_path_factory.mktemp("m") / ("train.de.gz" if gz else "train.de")
    path.write_bytes(gzip.compress(data) if gz else data)
    lines = outcome(multi30k.read_sentences, path, DataFormatError)
    text = as_text(data.removeprefix(b"\xef\xbb\xbf"))
    assert (lines is None) == (text is None)
    if lines is not None:  # one sentence per "\n"-ended line, whitespace collapsed
        expected = text.split("\n")
        if expected[-1] == "":
            expected.pop()
        assert lines == [" ".join(line.split()) for line in expected]


@FUZZ
@given(data=st.binary(min_size=1, max_size=300))
def test_multi30k_gzip_that_is_not_gzip(tmp_path_factory, data: bytes) -> None:
    assume(not data.startswith(b"\x1f\x8b"))
    path = tmp_path_factory.mktemp("m") / "val.en.gz"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=r"val\.en\.gz: not a readable gzip file"):
        multi30k.read_sentences(path)


@FUZZ
@given(data=HOSTILE)
def test_flickr_token_file(tmp_path_factory, data: bytes) -> None:
    folder = tmp_path_factory.mktemp("f")
    token, listing = folder / "Flickr8k.token.txt", folder / "Flickr_8k.trainImages.txt"
    token.write_bytes(data)
    listing.write_bytes(data)
    splits = outcome(lambda p: coco_captions.read_flickr_token(p, {"train": listing}, folder), token, DataFormatError)
    if splits is not None:
        assert all(r.captions for r in splits["train"])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(["filepath", "filename", "split", "sentences", "cocoid", "raw", "tokens"])
ROW_VALUES = st.one_of(
    JSON,
    st.sampled_from(["train", "restval", "val", "test", "x.jpg"]),
    st.lists(st.one_of(st.text(max_size=10), st.dictionaries(KEYS, JSON, max_size=2)), max_size=3),
)
ROWS = st.lists(st.one_of(st.dictionaries(KEYS, ROW_VALUES, max_size=5), JSON), max_size=4)


@FUZZ
@given(doc=st.one_of(JSON, ROWS.map(lambda rows: {"images": rows})))
def test_karpathy_json_of_any_shape(tmp_path_factory, doc) -> None:
    path = tmp_path_factory.mktemp("k") / "dataset_coco.json"
    path.write_text(json.dumps(doc))
    splits = outcome(lambda p: coco_captions.read_karpathy_json(p, p.parent), path, DataFormatError)
    if splits is not None:  # works: one record per entry, every caption a string
        assert sum(len(v) for v in splits.values()) == len(doc["images"])
        assert all(isinstance(c, str) for records in splits.values() for r in records for c in r.captions)


@FUZZ
@given(data=HOSTILE)
def test_karpathy_json_bytes(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("k") / "dataset_coco.json"
    path.write_bytes(data)
    outcome(lambda p: coco_captions.read_karpathy_json(p, p.parent), path, DataFormatError)


# ---- the text-classification datamodules (what `zoo fit` reads) -------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=HOSTILE)
def test_ag_news_csv(tmp_path_factory, data: bytes) -> None:
    root = write_ag_news(tmp_path_factory.mktemp("ag"), per_class=3)
    (root / "train.csv").write_bytes(data)
    module = AGNewsDataModule(root=str(root))
    result = outcome(lambda p: module.read(module.input_files()), root / "train.csv", DataFormatError)
    if result is not None:  # works: every row a 3-column record with a class in 1..4
        splits, names = result
        assert names == ["World", "Sports", "Business", "Sci/Tech"] and splits["train"].texts
        assert all(0 <= label < 4 for label in splits["train"].labels)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=HOSTILE)
def test_imdb_review(tmp_path_factory, data: bytes) -> None:
    root = write_folder(tmp_path_factory.mktemp("imdb"), imdb_members(per_class=2))
    review = root / "aclImdb" / "train" / "pos" / "0_9.txt"
    review.write_bytes(data)
    module = IMDBDataModule(root=str(root))
    result = outcome(lambda p: module.read(module.input_files()), review, DataFormatError)
    if result is not None:  # works: the review read as its text
        assert data.decode("utf-8") in result[0]["train"].texts


@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_text_classification_with_invalid_utf8_and_nul(tmp_path: Path, errors: str) -> None:
    root = write_folder(tmp_path, imdb_members(per_class=2))
    review = root / "aclImdb" / "train" / "neg" / "1_2.txt"
    review.write_bytes(b"fine words\nthen \xff\xfe\0 bad bytes")
    module = IMDBDataModule(root=str(root), encoding_errors=errors)
    if errors == "strict":
        with pytest.raises(
            DataFormatError, match=rf"{review}:2: invalid UTF-8 \(byte 16: invalid start byte\); .*encoding_errors='replace'"
        ):
            module.read(module.input_files())
    else:
        assert "fine words\nthen \ufffd\ufffd\0 bad bytes" in module.read(module.input_files())[0]["train"].texts


# ---- a 10 MB single line ------------------------------------------------------------------------------------
def test_ten_megabyte_lines(tmp_path: Path) -> None:
    """Works: one line, read whole (the text readers have no line-length limit; AG News's csv has one)."""
    line = ("word " * (TEN_MB // 5)).strip()
    (tmp_path / "corpus.txt").write_text(line)
    assert read_corpus(str(tmp_path / "corpus.txt")) == line
    (tmp_path / "train.de").write_text(line + "\n")
    assert multi30k.read_sentences(tmp_path / "train.de") == [line]
    (tmp_path / "dataset_coco.json").write_text(
        json.dumps({"images": [{"filepath": "", "filename": "a.jpg", "split": "test", "sentences": [{"raw": line}]}]})
    )
    assert coco_captions.read_karpathy_json(tmp_path / "dataset_coco.json", tmp_path)["test"][0].captions == [line]
    # AG News alone refuses it, clearly: Python's csv reader stops at 128 KiB a field.
    ag = write_ag_news(tmp_path / "ag", per_class=3)
    with open(ag / "train.csv", "a") as f:
        f.write(f'"2","a title","{line}"\n')
    module = AGNewsDataModule(root=str(ag))
    with pytest.raises(
        DataFormatError, match=rf"{ag / 'train.csv'}:13: malformed csv \(field larger than field limit \(131072\)\)"
    ):
        module.read(module.input_files())


# ---- tokenizers --------------------------------------------------------------------------------------------
TEXTS = st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), min_size=1, max_size=8)


@FUZZ
@given(texts=TEXTS, kind=st.sampled_from(tokenizers.TOKENIZER_KINDS))
def test_classification_tokenizer_on_any_text(texts: list, kind: str) -> None:
    tokenizer = tokenizers.train_tokenizer(texts, kind=kind, vocab_size=60, min_frequency=1)
    for ids in tokenizers.encode_texts(tokenizer, texts):
        assert all(0 <= i < tokenizer.get_vocab_size() for i in ids)


@FUZZ
@given(texts=TEXTS)
def test_translation_bpe_round_trips_any_text(texts: list) -> None:
    # Works: every character was seen in training, so decoding gives the NFKC text back exactly.
    import unicodedata

    tokenizer = tokenizers.train_translation_tokenizer(texts, kind="bpe", vocab_size=200, min_frequency=1)
    for text in texts:
        ids = tokenizers.encode_sentence(tokenizer, text)
        expected = unicodedata.normalize("NFKC", text).replace("\u2581", " ")
        assert tokenizers.detokenize(tokenizer, ids) == expected.strip() or "<unk>" in tokenizer.decode(ids)


@FUZZ
@given(serialized=st.one_of(st.text(max_size=200), JSON.map(json.dumps)))
def test_load_tokenizer_refuses_what_is_not_a_tokenizer(serialized: str) -> None:
    try:
        tokenizer = tokenizers.load_tokenizer(serialized)
    except ValueError as err:
        assert "not a tokenizer serialization" in str(err)
    else:
        assert tokenizer.get_vocab_size() >= 0


@pytest.mark.slow  # ~10 s on 2 cores: the Rust tokenizers on one 10 MB line
def test_tokenizers_on_a_ten_megabyte_line() -> None:
    tokenizer = tokenizers.train_tokenizer(["hello world"] * 3, kind="word", vocab_size=50, min_frequency=1)
    (ids,) = tokenizers.encode_texts(tokenizer, ["hello " * (TEN_MB // 6)])
    assert len(ids) == TEN_MB // 6 and set(ids) == {tokenizer.token_to_id("hello")}


# ---- images ---------------------------------------------------------------------------------------------------
def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    gradient = np.add.outer(np.arange(24), np.arange(32)).astype(np.uint8) * 4
    Image.fromarray(np.stack([gradient] * 3, -1)).save(buffer, fmt)
    return buffer.getvalue()


IMAGES = {fmt: image_bytes(fmt) for fmt in ("JPEG", "PNG")}


def mutate(data: bytes, cut: float, flips: list) -> bytes:
    out = bytearray(data)
    for where, bit in flips:
        out[int(where * len(out))] ^= 1 << bit
    return bytes(out[: max(1, int(cut * len(out)))]) if cut < 1 else bytes(out)


MUTATIONS = dict(
    cut=st.one_of(st.just(1.0), st.floats(0, 1, exclude_max=True)),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), max_size=4),
)


@FUZZ
@given(fmt=st.sampled_from(sorted(IMAGES)), **MUTATIONS)
def test_truncated_or_bit_flipped_images(tmp_path_factory, fmt: str, cut: float, flips: list) -> None:
    path = tmp_path_factory.mktemp("i") / f"photo.{fmt.lower()}"
    path.write_bytes(mutate(IMAGES[fmt], cut, flips))
    image = outcome(load_image, path, CorruptImageError)
    if image is not None:
        assert image.mode == "RGB" and image.size == (32, 24)
    frame = outcome(lambda p: load_frame(p, size=16), path, ValueError)
    if frame is not None:
        assert frame.shape == (16, 16, 3) and frame.dtype == np.uint8


@FUZZ
@given(data=HOSTILE)
def test_any_bytes_as_an_image(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("i") / "photo.jpg"
    path.write_bytes(data)
    with pytest.raises(CorruptImageError, match="cannot decode the image"):
        outcome(load_image, path)


# ---- videos ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames=6, width=32, height=24).read_bytes()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(real=st.booleans(), data=HOSTILE, **MUTATIONS)
@example(real=True, data=b"", cut=1.0, flips=[(0.515625, 7)])  # found here: a flip in the metadata, which PyAV decodes as UTF-8
def test_broken_videos(tmp_path_factory, video_bytes: bytes, real: bool, data: bytes, cut: float, flips: list) -> None:
    # Half the examples a real video truncated or bit-flipped, half hostile bytes.
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    path.write_bytes(mutate(video_bytes, cut, flips) if real else data)
    outcome(probe_video, path, VideoDecodeError)
    result = outcome(lambda p: decode_video(p, size=16), path, VideoDecodeError)
    if result is not None:  # works: some frames, uint8, in order
        frames, indices = result
        assert frames.dtype == np.uint8 and frames.shape[1:] == (16, 16, 3) and len(frames) == len(indices) >= 1
        assert list(indices) == sorted(indices)
