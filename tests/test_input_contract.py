"""Batch inference that loses nothing (docs/api.md, "The input contract"): every inference command
gives each input exactly one record, in order; a bad input (bytes that are not UTF-8, a blank line, a
hostile, truncated or missing file) is an error record naming it and the others go on; the exit status
says so (3); ``--output`` appears whole or not at all, an interrupted run leaves whole lines in
``FILE.partial``. Fast: the commands' ``main`` in-process on the small models shipped in the package
(each loaded once); the commands as a user types them, in real processes, are the slow tests at the end."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamodules.tokenizers import encode_texts, encode_truncated, train_tokenizer, truncate
from tests.conftest import REPO
from tests.fixtures import make_video
from zoo.cli import common, main

FAST = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---- files a user might have ---------------------------------------------------------------------
def bomb_png(path: Path, side: int = 30_000) -> Path:
    """A PNG whose header declares ``side`` x ``side`` pixels, in a few hundred bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Dict[str, Path]:
    from PIL import Image

    from zoo.cli.caption import draw_example
    from zoo.cli.label_frames import draw_example as draw_clip

    root = tmp_path_factory.mktemp("inputs")
    with contextlib.redirect_stderr(io.StringIO()):
        good = draw_example(root / "good.png")
        clip = draw_clip(root / "clip")
    buffer = io.BytesIO()
    Image.open(good).convert("RGB").save(buffer, "JPEG")
    (root / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (root / "text.jpg").write_text("not an image\n")
    (root / "noise.png").write_bytes(bytes(range(256)) * 3)
    video = make_video(root / "video.mp4", frames=6, width=32, height=32)
    (root / "cut.mp4").write_bytes(video.read_bytes()[:300])
    (root / "empty").mkdir()
    return {
        "good.png": good,
        "bomb.png": bomb_png(root / "bomb.png"),
        "cut.jpg": root / "cut.jpg",
        "text.jpg": root / "text.jpg",
        "noise.png": root / "noise.png",
        "missing.png": root / "missing.png",
        "clip": clip,
        "video.mp4": video,
        "cut.mp4": root / "cut.mp4",
        "empty": root / "empty",
        "missing.mp4": root / "missing.mp4",
    }


MODELS: Dict[Tuple[str, str], Any] = {}


@pytest.fixture
def loaded_once(monkeypatch):
    """Each shipped model loaded once for the whole module: the tests are about inputs, not loading."""
    load = common.load_model

    def cached(args, task):
        key = (args.model or args.ckpt, task.__name__)
        if key not in MODELS:
            MODELS[key] = load(args, task)
        return MODELS[key]

    monkeypatch.setattr(common, "load_model", cached)


def run(argv: Sequence[str], stdin: bytes = b"") -> Tuple[int, List[str], str]:
    """``zoo ARGV`` in-process with ``stdin`` as its bytes: the exit status, stdout's lines, stderr."""
    out, err, saved = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
    finally:
        sys.stdin = saved
    return status, out.getvalue().splitlines(), err.getvalue()


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-5 (a batch pads, a lone input does not)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-5 * max(1.0, abs(a))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def without_position(record: Dict[str, Any]) -> Dict[str, Any]:
    """A record as it would be alone: no position, and its error without the ``line N: `` prefix."""
    record = {k: v for k, v in record.items() if k not in ("index", "line")}
    if "error" in record and record["error"].startswith("line "):
        record["error"] = record["error"].split(": ", 1)[1]
    return record


# ---- the property over every command -------------------------------------------------------------
LINE_COMMANDS = {  # argv (stdin read as lines), good lines
    "classify": (["classify", "imdb_bigru"], ["great film", "awful film", "a slow start, then brilliant"]),
    "translate": (["translate", "multi30k_de_en_attn_gru", "--beam_size", "1"], ["Ein Mann fährt Fahrrad.", "Zwei Hunde."]),
    "sample": (["sample", "char_lstm_shakespeare", "--prime", "-", "--length", "6", "--seed", "0"], ["ROMEO:", "JULIET:"]),
    "answer": (["answer", "shapes_vqa_san", "GOOD"], ["what colour is the circle?", "is there a square?", "???"]),
}
BAD_LINES = {
    b"\xff\xfe": "not valid UTF-8 (byte 0xff at column 1)",
    b"caf\xc3": "not valid UTF-8 (byte 0xc3 at column 4)",
    b"ok \xed\xa0\x80": "not valid UTF-8 (byte 0xed at column 4)",
    b"": "blank line",
    b"  \t": "blank line",
}
ALONE: Dict[Tuple[str, ...], Dict[str, Any]] = {}


def alone(argv: List[str], line: bytes) -> Dict[str, Any]:
    """The record of ``line`` run by itself (cached)."""
    key = (*argv, line.decode("utf-8"))
    if key not in ALONE:
        _, [out], _ = run([*argv, "--json"], line + b"\n")
        ALONE[key] = without_position(json.loads(out))
    return ALONE[key]


def lines_of(good: List[str]):
    return st.lists(
        st.one_of(st.sampled_from([g.encode() for g in good]), st.sampled_from(sorted(BAD_LINES))), min_size=1, max_size=5
    )


@pytest.mark.parametrize("command", sorted(LINE_COMMANDS))
def test_every_line_of_stdin_gets_its_record(command: str, files, loaded_once) -> None:
    argv, good = LINE_COMMANDS[command]
    argv = [str(files["good.png"]) if a == "GOOD" else a for a in argv]

    @FAST
    @given(lines_of(good))
    def check(lines: List[bytes]) -> None:
        status, out, err = run([*argv, "--json"], b"\n".join(lines) + b"\n")
        records = [json.loads(line) for line in out]
        assert [(r["index"], r["line"]) for r in records] == [(k, k + 1) for k in range(len(lines))], out
        for k, (line, record) in enumerate(zip(lines, records)):
            if line in BAD_LINES:
                assert record["error"].startswith(f"line {k + 1}: {BAD_LINES[line]}"), record
            else:  # what it gets alone, error or not
                assert same(without_position(record), alone(argv, line)), (record, alone(argv, line))
        assert status == (3 if any("error" in r for r in records) else 0), err
        assert "Traceback" not in err

    check()


FILE_COMMANDS = {  # argv, good files, bad files (the error each must name)
    "caption": (
        ["caption", "shapes_caption_soft", "--beam_size", "1", "--no-figure"],
        ["good.png"],
        {
            "bomb.png": "over the limit of 89,478,485",
            "cut.jpg": "cannot decode the image",
            "text.jpg": "cannot decode the image",
            "noise.png": "cannot decode the image",
            "missing.png": "no such image file",
        },
    ),
    "label-frames": (
        ["label-frames", "moving_shapes_gru"],
        ["clip", "video.mp4"],
        {"cut.mp4": "", "empty": "holds no images", "missing.mp4": "neither a video file nor a frame folder"},
    ),
}


@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
def test_every_file_gets_its_record(command: str, files, loaded_once) -> None:
    argv, good, bad = FILE_COMMANDS[command]

    @FAST
    @given(st.lists(st.sampled_from(good + sorted(bad)), min_size=1, max_size=4))
    def check(names: List[str]) -> None:
        status, out, err = run([*argv, *(str(files[n]) for n in names), "--json"])
        records = [json.loads(line) for line in out]
        assert [(r["index"], r["file"]) for r in records] == [(k, str(files[n])) for k, n in enumerate(names)], out
        for name, record in zip(names, records):
            if name in bad:
                assert record["error"].startswith(str(files[name])) and bad[name] in record["error"], record
            else:
                _, [lone], _ = run([*argv, str(files[name]), "--json"])
                assert same(without_position(record), without_position(json.loads(lone)))
        assert status == (3 if any(n in bad for n in names) else 0) and "Traceback" not in err, err

    check()


def test_strict_skip_blank_and_encoding(loaded_once, tmp_path: Path) -> None:
    argv = ["classify", "imdb_bigru"]
    status, out, err = run([*argv, "--strict"], b"great film\n\xff\nawful film\n")
    assert (
        status == 2
        and len(out) == 1
        and err.strip().endswith("zoo classify: error: line 2: not valid UTF-8 (byte 0xff at column 1)")
    )
    status, out, _ = run([*argv, "--skip-blank", "--json"], b"great film\n\n  \nawful film\n")
    assert status == 0 and [json.loads(r)["line"] for r in out] == [1, 4]  # skipped because asked, never silently
    status, out, _ = run([*argv, "--encoding", "latin-1", "--json"], "très bon film\n".encode("latin-1"))
    assert status == 0 and json.loads(out[0])["text"] == "très bon film"
    status, out, _ = run([*argv, "--json"], "\ufeffgreat film\r\n".encode("utf-8"))  # a BOM and CRLF are not text
    assert json.loads(out[0])["text"] == "great film"


# ---- output: whole or not at all -------------------------------------------------------------------
def test_output_is_written_whole_and_an_interrupt_leaves_whole_lines(loaded_once, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "labels.txt"
    status, _, err = run(["classify", "imdb_bigru", "--output", str(out)], b"great film\n\nawful film\n")
    assert status == 3 and out.read_text().splitlines()[1].startswith("ERROR\tline 2: blank line") and "wrote 3 record(s)" in err
    assert not (tmp_path / "labels.txt.partial").exists()

    from zoo.cli.batch import Records

    write = Records.write

    def interrupted(self, line):  # the third line is cut by Ctrl-C half way through its bytes
        if self.count == 2:
            self.file.write((line + "\n").encode()[:5])
            raise KeyboardInterrupt
        write(self, line)

    monkeypatch.setattr(Records, "write", interrupted)
    again = tmp_path / "again.txt"
    status, _, err = run(
        ["sample", "char_lstm_shakespeare", "--prime", "-", "--length", "3", "--json", "--output", str(again)], b"A\nB\nC\nD\n"
    )
    assert status == common.INTERRUPTED and not again.exists()
    partial = tmp_path / "again.txt.partial"
    assert [json.loads(line)["prime"] for line in partial.read_text().splitlines()] == ["A", "B"]  # the cut third line is gone
    assert f"the 2 record(s) finished are in {partial}" in err


# ---- the readers' errors ---------------------------------------------------------------------------------
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    from datamodules import images
    from datamodules.images import CorruptImageError, load_image, set_max_pixels

    bomb = bomb_png(tmp_path / "bomb.png")
    for side in (30_000, 10_000):  # above twice Pillow's limit (Pillow's own error) and between (its warning)
        with pytest.raises(
            CorruptImageError, match=rf"bomb.png: the image declares {side * side:,} pixels, over the limit of 89,478,485"
        ):
            load_image(bomb_png(bomb, side))
    before = images.MAX_PIXELS
    try:
        set_max_pixels(2 * 10**8)
        with pytest.raises(CorruptImageError, match="cannot decode the image"):  # read, and found truncated
            load_image(bomb)
    finally:
        set_max_pixels(before)
    with pytest.raises(FileNotFoundError, match="missing.png: no such image file"):
        load_image(tmp_path / "missing.png")


def test_upstream_messages_are_summarised_in_whole_sentences(tmp_path: Path) -> None:
    from zoo.errors import summary

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"x": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(Exception) as caught:
        torch.load(tmp_path / "evil.ckpt", weights_only=True)
    told = summary(caught.value)  # torch 2.x words it in one of two ways
    assert told in (
        "UnpicklingError: Trying to load unsupported GLOBAL posix.system whose module posix is blocked.",
        "UnpicklingError: Unsupported global: GLOBAL posix.system was not an allowed global by default.",
    ), told
    assert "trust" not in told and "\n" not in told  # the cause, not torch's paragraph of advice
    long = ValueError("First sentence here. " + "Second one is long. " * 20)
    assert summary(long) == "ValueError: First sentence here. " + " ".join(["Second one is long."] * 7) + " ..."


def test_only_the_zoos_user_errors_end_in_one_line() -> None:
    from datamodules.download import ChecksumError, DataFormatError, DownloadError, MissingDataError, UnsafeArchiveError
    from datamodules.images import CorruptImageError
    from datamodules.video_io import VideoDecodeError
    from zoo.errors import UserError
    from zoo.export import ExportError
    from zoo.hub.errors import CheckpointError, PickleRefusedError, TaskNameError, UnknownModelError

    for cls in (
        ChecksumError,
        DataFormatError,
        DownloadError,
        MissingDataError,
        UnsafeArchiveError,
        CorruptImageError,
        VideoDecodeError,
        ExportError,
        CheckpointError,
        PickleRefusedError,
        TaskNameError,
        UnknownModelError,
    ):
        assert issubclass(cls, UserError), cls
    assert common.guarded("zoo x", lambda: (_ for _ in ()).throw(DataFormatError("f.txt:1: bad"))) == 2
    with pytest.raises(ValueError, match="a bug"):  # a plain ValueError is a bug: its traceback shows
        common.guarded("zoo x", lambda: (_ for _ in ()).throw(ValueError("a bug")))


@FAST
@given(
    st.lists(
        st.sampled_from("the a film great <br /> <p class=x y> ＜i＞ </i> < b > Σ é e\u0301 don't !! a<b \n".split(" ")),
        min_size=0,
        max_size=600,
    ),
    st.sampled_from(["head", "tail", "head_tail"]),
    st.integers(1, 12),
)
def test_long_texts_are_cut_before_tokenizing_to_the_same_ids(words: List[str], policy: str, max_tokens: int) -> None:
    tokenizer = TOKENIZER
    text = " ".join(words)
    whole = truncate(torch.tensor(encode_texts(tokenizer, [text])[0], dtype=torch.long), max_tokens, policy).tolist()
    assert encode_truncated(tokenizer, [text], max_tokens, policy) == [whole]


TOKENIZER = train_tokenizer(["the a film great don't a b i p class x y"] * 3, kind="bpe", vocab_size=60, min_frequency=1)


# ---- flags with one meaning ----------------------------------------------------------------------
def help_of(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([command, "--help"])
    return out.getvalue()


def test_output_means_the_same_in_every_command() -> None:
    from zoo.cli import COMMANDS

    described = {}
    for name, command in COMMANDS.items():
        if command.lightning:
            continue  # LightningCLI's own parser: it has no --output
        text = help_of(name)
        if "--output" in text:
            entry = re.search(r"\n  --output FILE\s+(.*?)(?=\n  -|\Z)", text.split("options:", 1)[1], re.S)
            described[name] = " ".join(entry.group(1).split()) if entry else text
    assert set(described) == {"sample", "classify", "translate", "caption", "answer", "label-frames"}
    assert set(described.values()) == {" ".join(common.OUTPUT_HELP.split())}, described


def test_old_spellings_still_work_and_name_the_new_flag(tmp_path: Path, files, loaded_once, capsys) -> None:
    from zoo.cli.export import main as export

    assert export(["char_lstm_shakespeare", "--out", str(tmp_path / "lm")]) == 0
    assert (tmp_path / "lm" / "config.json").is_file()
    assert (
        "zoo export: warning: --out is deprecated and will be removed in the next release; use --out-dir"
        in capsys.readouterr().err
    )
    status, out, err = run(
        ["caption", "shapes_caption_soft", str(files["good.png"]), "--beam_size", "1", "--output", str(tmp_path / "fig.png")]
    )
    assert status == 0 and (tmp_path / "fig.png").stat().st_size > 1000 and out[0].endswith(str(tmp_path / "fig.png"))
    assert (
        f"--output {tmp_path / 'fig.png'} for the figure is deprecated" in err and f"use --figure {tmp_path / 'fig.png'}" in err
    )
    text = tmp_path / "t.txt"
    text.write_text("def f(x):\n    return x\n" * 20)
    status, _, err = run(
        ["visualize", "char_lstm_python", str(text), "--unit", "1", "--output", str(tmp_path / "viz"), "--show_chars", "40"]
    )
    assert status == 0 and (tmp_path / "viz" / "hidden_L0_u1.png").is_file() and "use --out-dir" in err


# ---- the commands as a user types them (real processes) -------------------------------------------------
def shell(command: str, cwd: Path, **popen) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "ZOO_HOME": str(cwd / "home"),
    }
    env.pop("ZOO_DEBUG", None)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **popen)


@pytest.mark.slow
def test_as_typed_bad_lines_on_stdin(tmp_path: Path) -> None:
    assert shutil.which("zoo", path=str(Path(sys.executable).parent)), "the zoo command is installed beside python"
    for command in (
        "zoo classify imdb_bigru --json",
        "zoo translate multi30k_de_en_attn_gru --json",
        "zoo sample char_lstm_shakespeare --prime - --length 20 --json",
    ):
        done = shell(f"printf 'great film\\n\\xff\\xfe\\n\\nawful film\\n' | {command}", tmp_path)
        records = [json.loads(line) for line in done.stdout.splitlines()]
        assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
        assert [r["index"] for r in records] == [0, 1, 2, 3] and "error" not in records[0] and "error" not in records[3]
        assert records[1]["error"] == "line 2: not valid UTF-8 (byte 0xff at column 1)"
        assert records[2]["error"].startswith("line 3: blank line")


@pytest.mark.slow
def test_as_typed_caption_good_bomb_and_cut(tmp_path: Path, files) -> None:
    for name in ("good.png", "bomb.png", "cut.jpg"):
        shutil.copy(files[name], tmp_path / name)
    done = shell("zoo caption shapes_caption_soft good.png bomb.png cut.jpg", tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 3 and "Traceback" not in done.stderr and len(lines) == 3, done.stdout + done.stderr
    assert lines[0].startswith("good.png\t") and lines[0].endswith("captions/good_attention.png")
    assert lines[1].startswith("ERROR\tbomb.png: the image declares 900,000,000 pixels, over the limit of 89,478,485")
    assert lines[2].startswith("ERROR\tcut.jpg: cannot decode the image")


@pytest.mark.slow
def test_as_typed_ctrl_c_leaves_whole_records_in_the_partial_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ZOO_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zoo.cli",
            "sample",
            "char_lstm_shakespeare",
            "--prime",
            "-",
            "--length",
            "50",
            "--seed",
            "0",
            "--json",  # one line a record: a sample's own text may hold newlines (and "JULIET")
            "--output",
            "out.txt",
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdin.write("ROMEO:\nJULIET:\n")  # two primes, then the user presses Ctrl-C while it waits for more
    process.stdin.flush()
    partial = tmp_path / "out.txt.partial"
    deadline = time.monotonic() + 240
    while (not partial.exists() or partial.read_text().count("\n") < 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == common.INTERRUPTED and "Traceback" not in err, err
    assert not (tmp_path / "out.txt").exists() and partial.read_text().endswith("\n")
    assert [json.loads(line)["prime"] for line in partial.read_text().splitlines()] == ["ROMEO:", "JULIET:"]
    assert "the 2 record(s) finished are in" in err
