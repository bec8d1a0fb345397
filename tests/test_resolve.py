"""zoo.tasks.resolve: nothing named in a file is imported or called unless it is a zoo task class
(issue 18). Checkpoints (`zoo_task`), pretrained config.json files (`task`) and `--task` all go
through resolve_task; a user's own task class loads only when the user names its module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.hub_common import VOCAB, assert_refused, folder, isolated_home, outputs, tiny_lm  # noqa: F401  (fixtures)
from zoo import load_pretrained
from zoo.hub import CheckpointError, PickleRefusedError, TaskNameError
from zoo.tasks.base import TaskModule, load_task
from zoo.tasks.language_model import CharLanguageModel
from zoo.tasks.resolve import read_checkpoint, resolve_task

REPO = Path(__file__).resolve().parents[1]
EVIL = {"zoo_task": "subprocess.Popen", "hyper_parameters": {"args": ["touch", "pwned.txt"]}, "state_dict": {}}


@pytest.fixture
def evil_ckpt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Issue 18's checkpoint; the test runs in tmp_path, where `touch pwned.txt` would leave its mark."""
    monkeypatch.chdir(tmp_path)
    torch.save(EVIL, tmp_path / "evil.ckpt")
    return tmp_path / "evil.ckpt"


def with_task(folder: Path, task: str, **init_args) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config["task"] = task
    config["init_args"].update(init_args)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# ---- the evil checkpoint -------------------------------------------------------------------------
def test_evil_checkpoint_is_refused_by_load_task(evil_ckpt: Path) -> None:
    for expected in (None, CharLanguageModel, TaskModule):
        with pytest.raises(TaskNameError, match=r"evil.ckpt: refusing task 'subprocess.Popen': it is not under zoo.tasks."):
            load_task(evil_ckpt, expected)
    assert not (evil_ckpt.parent / "pwned.txt").exists()


def test_evil_checkpoint_is_refused_by_load_pretrained(evil_ckpt: Path, folder: Path) -> None:
    with pytest.raises(PickleRefusedError, match="refusing to unpickle"):
        load_pretrained(evil_ckpt)  # a checkpoint is never a pretrained folder
    with_task(folder, "subprocess.Popen", args=["touch", "pwned.txt"])
    with pytest.raises(TaskNameError, match=r"config.json: refusing task 'subprocess.Popen'"):
        load_pretrained(folder)
    with pytest.raises(TaskNameError):
        CharLanguageModel.from_pretrained(folder)
    assert not (evil_ckpt.parent / "pwned.txt").exists()


def test_evil_checkpoint_is_refused_by_zoo_export(evil_ckpt: Path, capsys) -> None:
    from zoo.cli.export import main

    assert_refused(main, ["--ckpt", str(evil_ckpt), "--out-dir", "x"], "subprocess.Popen", capsys)
    assert_refused(
        main,
        ["--ckpt", str(evil_ckpt), "--out-dir", "x", "--task", "subprocess.Popen"],
        "is the class subprocess.Popen, not a task class",
        capsys,
    )  # even when named: not a task
    assert not Path("pwned.txt").exists() and not Path("x").exists()


# ---- config.json naming what is not a zoo task ---------------------------------------------------
@pytest.mark.parametrize(
    "task, message",
    [
        ("os.system", "refusing task 'os.system': it is not under zoo.tasks."),
        ("builtins.eval", "refusing task 'builtins.eval': it is not under zoo.tasks."),
        ("lightning.pytorch.demos.boring_classes.BoringModel", "it is not under zoo.tasks. and its module was not named by you"),
        ("zoo_plugins_nowhere.Task", "refusing task 'zoo_plugins_nowhere.Task'"),
        ("zoo.tasks.nowhere.Task", "module 'zoo.tasks.nowhere' is not installed"),
        ("zoo.tasks.language_model.NoSuchClass", "module 'zoo.tasks.language_model' has no 'NoSuchClass'"),
        ("zoo.tasks.base.load_task", "is a function, not a task class"),
        ("zoo.tasks.base.TaskModule", "is the class zoo.tasks.base.TaskModule, not a task class"),
        ("zoo.tasks.language_model.torch", "is a module, not a task class"),
        ("zoo.tasksevil.Task", "it is not under zoo.tasks."),
        ("__import__('os').system", "is not a dotted path 'module.Class'"),
        ("", "is not a dotted path"),
    ],
)
def test_config_naming_a_non_task_is_refused(folder: Path, task: str, message: str) -> None:
    with_task(folder, task)
    with pytest.raises(TaskNameError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")) as info:
        load_pretrained(folder)
    assert str(folder / "config.json") in str(info.value)  # the file at fault is named
    assert isinstance(info.value, ValueError)  # what the CLI turns into exit status 2


def test_a_refused_module_is_never_imported(folder: Path) -> None:
    # BoringModel is a LightningModule, not a zoo task; its module must not even be imported
    with_task(folder, "lightning.pytorch.demos.boring_classes.BoringModel")
    code = textwrap.dedent(f"""
        import sys
        from zoo import load_pretrained
        try:
            load_pretrained({str(folder)!r})
        except ValueError as e:
            print(type(e).__name__, "lightning.pytorch.demos.boring_classes" in sys.modules)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert done.stdout.split() == ["TaskNameError", "False"], done.stderr


# ---- a task class the user names explicitly ------------------------------------------------------
@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "my_tasks.py").write_text(
        textwrap.dedent("""
        from zoo.tasks.language_model import CharLanguageModel

        class MyLM(CharLanguageModel):
            pass

        class Helper:
            pass
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_tasks

    yield my_tasks
    sys.modules.pop("my_tasks", None)


def test_an_explicitly_allowed_user_task_loads(user_module, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = user_module.MyLM(vocab=VOCAB, embedding_dim=8, hidden_size=16).eval()
    saved = model.save_pretrained(tmp_path / "mine")
    assert json.loads((saved / "config.json").read_text())["task"] == "my_tasks.MyLM"
    with pytest.raises(TaskNameError, match="name its module explicitly"):
        load_pretrained(saved)  # a file alone cannot pick a module outside zoo.tasks
    for loaded in (
        load_pretrained(saved, allow_modules=["my_tasks"]),
        load_pretrained(saved, expected=user_module.MyLM),
        user_module.MyLM.from_pretrained(saved),
    ):
        assert type(loaded) is user_module.MyLM
        torch.testing.assert_close(outputs(loaded), outputs(model))
    with pytest.raises(TaskNameError, match="is the class my_tasks.Helper, not a task class"):
        load_pretrained(with_task(saved, "my_tasks.Helper"), allow_modules=["my_tasks"])
    # the same through a checkpoint and `zoo export --task`
    ckpt = tmp_path / "mine.ckpt"
    torch.save({"zoo_task": "my_tasks.MyLM", "hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, ckpt)
    with pytest.raises(TaskNameError, match="my_tasks.MyLM"):
        load_task(ckpt)
    assert type(load_task(ckpt, allow_modules=["my_tasks"])) is user_module.MyLM
    from zoo.cli.export import main

    assert main(["--ckpt", str(ckpt), "--out-dir", str(tmp_path / "exported"), "--task", "my_tasks.MyLM"]) == 0


def test_allowed_but_not_installed(folder: Path) -> None:
    with_task(folder, "zoo_plugins_nowhere.tasks.Task")
    with pytest.raises(TaskNameError, match="module 'zoo_plugins_nowhere.tasks' is not installed"):
        load_pretrained(folder, allow_modules=["zoo_plugins_nowhere.tasks"])


def test_resolve_task_directly() -> None:
    assert resolve_task("zoo.tasks.language_model.CharLanguageModel", TaskModule, "here") is CharLanguageModel
    with pytest.raises(
        TaskNameError, match="here: task 'zoo.tasks.language_model.CharLanguageModel' is the class .* not a task class"
    ):
        resolve_task("zoo.tasks.language_model.CharLanguageModel", torch.nn.Embedding, "here")  # the base decides
    with pytest.raises(TaskNameError, match="not a dotted path"):
        resolve_task(None, TaskModule, "here")  # type: ignore[arg-type]


# ---- reading checkpoints -------------------------------------------------------------------------
def test_read_checkpoint(tmp_path: Path) -> None:
    model = tiny_lm()
    path = tmp_path / "good.ckpt"
    torch.save(
        {
            "zoo_task": "zoo.tasks.language_model.CharLanguageModel",
            "state_dict": model.state_dict(),
            "hyper_parameters": {**model.hparams, "_class_path": "x", "_instantiator": "y"},
            "epoch": 3,
        },
        path,
    )
    task, hparams, state = read_checkpoint(path)
    assert task == "zoo.tasks.language_model.CharLanguageModel" and set(state) == set(model.state_dict())
    assert not any(k.startswith("_") for k in hparams) and hparams["vocab"] == VOCAB
    assert torch.equal(outputs(load_task(path)), outputs(model))


@pytest.mark.parametrize(
    "content, error, message",
    [
        (None, FileNotFoundError, "does not exist"),
        ("dir", IsADirectoryError, "is a folder"),
        (b"", CheckpointError, "not a readable checkpoint"),
        (b"\x00garbage" * 10, CheckpointError, "not a readable checkpoint"),
        ("truncated", CheckpointError, "not a readable checkpoint"),
        ([1, 2, 3], CheckpointError, "expected a checkpoint dict, got a list"),
        ({"hyper_parameters": {}}, CheckpointError, "no 'state_dict' of tensors"),
        ({"state_dict": {}, "zoo_task": 7}, CheckpointError, "'zoo_task' must be a dotted class path"),
        ({"state_dict": {}, "hyper_parameters": [1]}, CheckpointError, "'hyper_parameters' must be a dict"),
    ],
)
def test_bad_checkpoints_are_clear_errors(tmp_path: Path, content, error, message) -> None:
    path = tmp_path / "bad.ckpt"
    if content == "dir":
        path.mkdir()
    elif content == "truncated":
        torch.save({"state_dict": tiny_lm().state_dict()}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(error, match=message) as info:
        load_task(path)
    assert "bad.ckpt" in str(info.value)


def test_weights_that_do_not_fit_name_the_file(tmp_path: Path) -> None:
    model = tiny_lm()
    path = tmp_path / "odd.ckpt"
    torch.save(
        {
            "zoo_task": "zoo.tasks.language_model.CharLanguageModel",
            "hyper_parameters": {**model.hparams, "hidden_size": 8},
            "state_dict": model.state_dict(),
        },
        path,
    )
    with pytest.raises(ValueError, match="odd.ckpt: the weights do not fit CharLanguageModel.*shape mismatch"):
        load_task(path)
    torch.save(
        {
            "zoo_task": "zoo.tasks.language_model.CharLanguageModel",
            "hyper_parameters": {**model.hparams, "hiden_size": 8},
            "state_dict": model.state_dict(),
        },
        path,
    )
    with pytest.raises(ValueError, match="odd.ckpt: CharLanguageModel has no argument hiden_size"):
        load_task(path)


# ---- every command that takes --ckpt (needs the merged zoo.cli package) --------------------------
def _inputs(tmp_path: Path) -> dict:
    from PIL import Image

    image = tmp_path / "picture.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(image)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16), (0, 0, 40 * i)).save(frames / f"frame_{i:05d}.png")
    text = tmp_path / "text.txt"
    text.write_text("To be, or not to be\n")
    return {
        "sample": ["ROMEO:"],
        "classify": ["A moving, funny film."],
        "translate": ["Ein Hund läuft."],
        "caption": [str(image)],
        "label-frames": [str(frames)],
        "visualize": ["--text", str(text), "--out-dir", str(tmp_path / "viz")],
        "export": ["--out-dir", str(tmp_path / "exported")],
    }


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sample", "classify", "translate", "caption", "label-frames", "visualize", "export"])
def test_every_ckpt_command_refuses_the_evil_checkpoint(evil_ckpt: Path, tmp_path: Path, command: str) -> None:
    args = _inputs(tmp_path)[command]
    done = subprocess.run(
        [sys.executable, "-m", "zoo.cli", command, "--ckpt", str(evil_ckpt), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        input="",
        env={**{k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "refusing task 'subprocess.Popen'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "pwned.txt").exists()
