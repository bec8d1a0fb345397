"""Broken inputs and broken models through the commands: one of each family (sample, classify,
translate, caption, label-frames, export) given a bad data file is an error record naming it (exit
status 3; with --strict one line and status 2), a bad --ckpt or a bad pretrained folder ends in exit
status 2 and one line naming the file, never a traceback. In-process through
``zoo.cli.main`` (as tests/hub_common.assert_refused does), plus one real ``zoo`` process (slow)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import torch

from datamodules.tokenizers import train_tokenizer, train_translation_tokenizer
from tests.conftest import REPO
from tests.fixtures import make_video
from tests.hub_common import assert_refused, isolated_home, tiny_lm  # noqa: F401  (fixtures)
from zoo.cli import main
from zoo.tasks.classifier import SequenceClassifier
from zoo.tasks.frame_classifier import FrameClassifier
from zoo.tasks.seq2seq import Seq2Seq


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """Untrained tiny models of each family as pretrained folders (their answers do not matter here)."""
    from tests.test_captioner import tiny_model

    root = tmp_path_factory.mktemp("models")
    words = train_tokenizer(["a red square", "a blue circle"] * 3, vocab_size=20, min_frequency=1).to_str()
    pieces = train_translation_tokenizer(["ein hund läuft", "a dog runs"] * 3, vocab_size=40, min_frequency=1).to_str()
    models = {
        "sample": tiny_lm(),
        "classify": SequenceClassifier(tokenizer_json=words, label_names=["neg", "pos"], embedding_dim=8, hidden_size=8),
        "translate": Seq2Seq(source_tokenizer_json=pieces, target_tokenizer_json=pieces, embedding_dim=8, hidden_size=8),
        "caption": tiny_model("soft", tokenizer_json=words),
        "label-frames": FrameClassifier(label_names=["red", "blue"], encoder="zoo_frame_cnn", hidden_size=8, cell="gru"),
    }
    return {name: Path(model.eval().save_pretrained(root / name)) for name, model in models.items()}


def copy_folder(folder: Path, to: Path) -> Path:
    to.mkdir(parents=True)
    for file in folder.iterdir():
        (to / file.name).write_bytes(file.read_bytes())
    return to


def assert_failed_inputs(main, argv, errors, capsys) -> List[str]:
    """A batch with bad inputs: exit status 3, one ``ERROR<TAB>why`` line per bad input matching
    ``errors`` in order, no traceback; returns the stdout lines."""
    import re

    assert main(argv) == 3
    out, err = capsys.readouterr()
    lines = out.splitlines()
    found = [line for line in lines if line.startswith("ERROR\t")]
    assert len(found) == len(errors) and all(re.search(e, line) for e, line in zip(errors, found)), out
    assert "Traceback" not in err and err.strip().endswith("exit status 3"), err
    return lines


def test_bad_data_files(folders: dict, tmp_path: Path, capsys) -> None:
    bad_text = tmp_path / "sentences.txt"
    bad_text.write_bytes(b"ein hund\n\xff\xfe l\xe4uft\n")
    lines = assert_failed_inputs(
        main,
        ["translate", str(folders["translate"]), "--input", str(bad_text)],
        [rf"^ERROR\t{bad_text}:2: not valid UTF-8 \(byte 0xff at column 1\)$"],
        capsys,
    )
    assert len(lines) == 2 and not lines[0].startswith("ERROR")  # line 1 translated, line 2 its error
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg" + bytes(20))
    assert_failed_inputs(
        main,
        ["caption", str(folders["caption"]), str(image), "--no-figure"],
        [rf"^ERROR\t{image}: cannot decode the image"],
        capsys,
    )
    video = tmp_path / "clip.mp4"
    video.write_bytes(make_video(tmp_path / "real.mp4", frames=4).read_bytes()[:300])  # cut inside the first frames
    assert_failed_inputs(
        main,
        ["label-frames", str(folders["label-frames"]), str(video)],
        [rf"^ERROR\t{video}: (cannot decode video|the video holds no decodable frames|no video stream in the file)"],
        capsys,
    )
    # --strict: the first bad input ends the command in one line, status 2
    assert_refused(
        main,
        ["caption", str(folders["caption"]), str(image), "--no-figure", "--strict"],
        rf"zoo caption: error: {image}: cannot decode the image",
        capsys,
    )


def test_a_recipe_that_is_not_utf8(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(b"model:\n  class_path: zoo.tasks.language_model.CharLanguageModel\n  # caf\xe9\n")
    assert_refused(
        main,
        ["fit", "--config", str(recipe)],
        rf"zoo fit: error: {recipe}:3: invalid UTF-8 \(byte \d+: invalid continuation byte\); expected a UTF-8 YAML recipe",
        capsys,
    )


def test_invalid_utf8_on_stdin(folders: dict, monkeypatch, capsys) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"fine\n\xff\xfe\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert_failed_inputs(
        main, ["classify", str(folders["classify"])], [r"^ERROR\tline 2: not valid UTF-8 \(byte 0xff at column 1\)$"], capsys
    )


def test_bad_checkpoints(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(os.urandom(4096))
    for command in ("classify", "translate", "sample", "export"):
        argv = [command, "--ckpt", str(junk)] + (["--out-dir", str(tmp_path / "out")] if command == "export" else ["x"])
        assert_refused(main, argv, rf"zoo {command}: error: {junk}: not a readable checkpoint of tensors and plain data", capsys)
    truncated = tmp_path / "truncated.ckpt"
    buffer = io.BytesIO()
    torch.save(
        {"zoo_task": "zoo.tasks.language_model.CharLanguageModel", "hyper_parameters": {}, "state_dict": tiny_lm().state_dict()},
        buffer,
    )
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert_refused(
        main, ["sample", "--ckpt", str(truncated)], rf"zoo sample: error: {truncated}: not a readable checkpoint", capsys
    )
    assert not (tmp_path / "out").exists()


def test_bad_pretrained_folders(folders: dict, tmp_path: Path, capsys) -> None:
    cut = copy_folder(folders["classify"], tmp_path / "cut")
    (cut / "model.safetensors").write_bytes((cut / "model.safetensors").read_bytes()[:100])
    assert_refused(
        main,
        ["classify", str(cut), "a red square"],
        rf"zoo classify: error: {cut / 'model.safetensors'}: sha256 [0-9a-f]{{64}} differs from",
        capsys,
    )
    huge = copy_folder(folders["sample"], tmp_path / "huge")
    config = json.loads((huge / "config.json").read_text())
    config["init_args"]["hidden_size"] = 10**12
    (huge / "config.json").write_text(json.dumps(config))
    assert_refused(
        main,
        ["sample", str(huge), "--length", "5"],
        rf"zoo sample: error: {huge / 'config.json'}: init arg hidden_size=1000000000000 is outside \[1, 65536\]",
        capsys,
    )
    typed = copy_folder(folders["translate"], tmp_path / "typed")
    config = json.loads((typed / "config.json").read_text())
    config["init_args"]["source_tokenizer_json"] = '{"not": "a tokenizer"}'
    config.pop("files")  # a consistent hostile folder: no manifest, and the readable copy agrees
    (typed / "source_tokenizer.json").write_text('{"not": "a tokenizer"}')
    (typed / "config.json").write_text(json.dumps(config))
    assert_refused(
        main,
        ["translate", str(typed), "ein hund"],
        rf"zoo translate: error: {typed / 'config.json'}: its init args do not build Seq2Seq \(ValueError: not a tokenizer serialization",
        capsys,
    )


@pytest.mark.slow  # spawns the `zoo` command
def test_a_real_process_prints_one_line(folders: dict, tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(os.urandom(500))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "ZOO_HOME": str(tmp_path / "home"),
    }
    env.pop("ZOO_DEBUG", None)
    run = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "caption", str(folders["caption"]), str(image), "--no-figure"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 3 and "Traceback" not in run.stderr
    assert run.stdout.startswith(f"ERROR\t{image}: cannot decode the image")
