"""Issue 28, "files decide nothing": a checkpoint, a model folder or an archive chooses no code, no
network and no unbounded memory. Each test holds a marker file or a local server that would record
the forbidden effect, asserts that it did not happen, and that the refusal is one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.hub_common import VOCAB, isolated_home  # noqa: F401  (fixture)
from zoo.hub import CheckpointError, PretrainedError, TaskNameError
from zoo.tasks.base import load_task
from zoo.tasks.language_model import CharLanguageModel
from zoo.tasks.resolve import check_resume

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "video_frames_shapes.yaml"
FRAMES = "zoo.tasks.frame_classifier.FrameClassifier"
BORING = "lightning.pytorch.demos.boring_classes.BoringModel"


def one_line(err: str) -> str:
    """The command's stderr holds exactly one line, the zoo's error."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def ckpt(path: Path, hparams: dict, state: dict | None = None, **extra) -> Path:
    torch.save({"pytorch-lightning_version": "2.6.0", "hyper_parameters": hparams,
                "state_dict": {"w": torch.zeros(2)} if state is None else state, **extra}, path)
    return path


# ---- 1. --ckpt_path cannot choose the model class --------------------------------------------------
@pytest.fixture
def marker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A LightningModule whose module writes `imported.txt` when imported: the forbidden effect."""
    (tmp_path / "evil_marker.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(tmp_path / "imported.txt")!r}).write_text("imported")
        from lightning.pytorch.demos.boring_classes import BoringModel as Evil
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "imported.txt"
    sys.modules.pop("evil_marker", None)


def test_ckpt_path_naming_another_class_is_refused_before_import(marker_module: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    path = ckpt(tmp_path / "swapped.ckpt", {"_class_path": "evil_marker.Evil"})
    assert main(["validate", "--config", str(RECIPE), "--ckpt_path", str(path), "--trainer.logger", "false"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("zoo validate: error: ") and str(path) in line
    assert "'evil_marker.Evil'" in line and f"'{FRAMES}'" in line  # both classes named
    assert not marker_module.exists() and "evil_marker" not in sys.modules


@pytest.mark.parametrize("content, where", [
    ({"hyper_parameters": {"class_path": BORING, "init_args": {}}}, "hyper_parameters.class_path"),
    ({"hyper_parameters": {"_class_path": FRAMES, "encoder": {"class_path": BORING}}}, "hyper_parameters.encoder.class_path"),
    ({"hyper_parameters": {"_class_path": FRAMES, "x": [{"class_path": 5}]}}, "hyper_parameters.x[0].class_path"),
    ({"hyper_parameters": {}, "zoo_task": "zoo.tasks.classifier.SequenceClassifier"}, "zoo_task"),
])
def test_every_class_a_checkpoint_names_must_be_the_recipes(tmp_path: Path, content: dict, where: str) -> None:
    path = ckpt(tmp_path / "x.ckpt", content.pop("hyper_parameters"), **content)
    with pytest.raises(TaskNameError, match=f"its {where.replace('[', '.').replace(']', '.')} names") as info:
        check_resume(path, FRAMES, {})
    assert "\n" not in str(info.value) and FRAMES in str(info.value)


def test_changed_settings_are_named(tmp_path: Path) -> None:
    path = ckpt(tmp_path / "x.ckpt", {"_class_path": FRAMES, "hidden_size": 32, "cell": "gru", "label_names": ["a"]})
    changed, state = check_resume(path, FRAMES, {"hidden_size": 64, "cell": "gru", "label_names": None, "lr": 0.1})
    assert changed == ["hidden_size"] and list(state) == ["w"]  # None in the recipe: data the checkpoint supplies


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint", "not a readable checkpoint of tensors and plain data"),
    ({"hyper_parameters": {}, "state_dict": {}}, "not a Lightning checkpoint"),
    ({"pytorch-lightning_version": "2.6.0", "hyper_parameters": {1: 2}, "state_dict": {}}, "must be a dict of named values"),
    ({"pytorch-lightning_version": "2.6.0", "hyper_parameters": {}}, "no 'state_dict' of tensors"),
])
def test_bad_ckpt_path_files_are_one_line(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as info:
        check_resume(path, FRAMES, {})
    assert "\n" not in str(info.value)


def test_ckpt_path_weights_that_do_not_fit_are_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    path = ckpt(tmp_path / "x.ckpt", {"_class_path": FRAMES, "label_names": ["red", "green", "blue", "yellow"]})
    assert main(["validate", "--config", str(RECIPE), "--ckpt_path", str(path), "--trainer.logger", "false"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "its weights do not fit the recipe's FrameClassifier: missing [" in line and "unexpected ['w']" in line


def test_ckpt_path_url_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["test", "--config", str(RECIPE), "--ckpt_path", "http://127.0.0.1:9/x.ckpt"]) == 2
    assert "resuming from a URL is refused" in one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_zoo_fit_with_a_boring_model_checkpoint_is_refused(tmp_path: Path) -> None:
    """Issue 28's must-show, as a user types it: exit 2, one line, BoringModel's module never imported."""
    path = ckpt(tmp_path / "swapped.ckpt", {"_class_path": BORING})
    code = ("import sys; from zoo.cli import main; code = main(sys.argv[1:]); "
            "print('IMPORTED' if 'lightning.pytorch.demos.boring_classes' in sys.modules else 'CLEAN'); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, "fit", "--config", str(RECIPE), "--ckpt_path", "swapped.ckpt"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"})
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("zoo fit: error: swapped.ckpt: refusing --ckpt_path") and BORING in line and FRAMES in line
    assert done.stdout.split() == ["CLEAN"]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "lightning_logs").exists()  # nothing ran


# ---- 2. a checkpoint without the weights its task needs ------------------------------------------
def test_checkpoint_without_weights_is_refused_at_load(tmp_path: Path) -> None:
    torch.save({"zoo_task": "zoo.tasks.language_model.CharLanguageModel", "hyper_parameters": {}, "state_dict": {}}, tmp_path / "a.ckpt")
    with pytest.raises(PretrainedError, match="incomplete: CharLanguageModel cannot be built without vocab"):
        load_task(tmp_path / "a.ckpt")
    torch.save({"zoo_task": "zoo.tasks.language_model.CharLanguageModel", "hyper_parameters": {"vocab": VOCAB}, "state_dict": {}}, tmp_path / "b.ckpt")
    with pytest.raises(PretrainedError, match=r"holds no weights \(an empty state dict\)"):
        load_task(tmp_path / "b.ckpt", CharLanguageModel)
