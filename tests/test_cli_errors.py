"""Errors a user can fix end in one clear message and exit status 2, never a traceback (unless
``ZOO_DEBUG=1``): a misspelt recipe option names the closest valid ones first, missing data lists
what is missing, an unknown model or a missing checkpoint says so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # end-to-end runs of the `zoo` command in subprocesses: `python -m pytest -m slow`

CHAR_LM = str(REPO / "recipes" / "char_lm.yaml")


def zoo(*args: str, cwd, env=None, stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "offline",
        "ZOO_HOME": str(cwd / "zoo_home"),
        **(env or {}),
    }
    if "ZOO_DEBUG" not in (env or {}):
        full_env.pop("ZOO_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=full_env, input=stdin, capture_output=True, text=True, timeout=240
    )


def test_misspelt_options_name_the_closest_valid_ones_first(tmp_path):
    run = zoo("fit", "--config", CHAR_LM, "--model.hiden_size", "3", cwd=tmp_path)
    assert run.returncode == 2
    first = run.stderr.splitlines()[0]
    assert "--model.hiden_size is not an option of CharLanguageModel; did you mean --model.hidden_size?" in first
    assert len(run.stderr.splitlines()) <= 3 and "Union" not in run.stderr and "Traceback" not in run.stderr
    # --data.*, --trainer.* (and the init_args spelling) the same way, one line each
    run = zoo("fit", "--config", CHAR_LM, "--data.init_args.seq_lne", "8", "--trainer.max_epoch", "1", cwd=tmp_path)
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert "--data.init_args.seq_lne is not an option of CharCorpusDataModule; did you mean --data.init_args.seq_len?" in lines[0]
    assert "--trainer.max_epoch is not an option of Trainer; did you mean --trainer.max_epochs" in lines[1]


def test_bad_config_and_missing_corpus_say_which_file(tmp_path, tiny_corpus):
    run = zoo("fit", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert run.returncode == 2 and "nope.yaml" in run.stderr and "does not exist" in run.stderr
    run = zoo(
        "fit",
        "--config",
        CHAR_LM,
        "--data.init_args.corpus",
        str(tmp_path / "missing.txt"),
        "--trainer.fast_dev_run",
        "true",
        "--trainer.logger",
        "false",
        cwd=tmp_path,
    )
    assert run.returncode == 2 and "missing.txt" in run.stderr and "Traceback" not in run.stderr


def test_fit_without_coco_lists_what_is_missing_without_traceback(tmp_path):
    args = [
        "fit",
        "--config",
        str(REPO / "recipes" / "caption_attn.yaml"),
        "--data.root",
        str(tmp_path / "coco"),
        "--model.pretrained",
        "false",
        "--trainer.logger",
        "false",
    ]
    run = zoo(*args, cwd=tmp_path)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "zoo fit: error: " in run.stderr
    assert "train2014" in run.stderr and "val2014" in run.stderr and "dataset_coco.json" in run.stderr
    debug = zoo(*args, cwd=tmp_path, env={"ZOO_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "train2014" in debug.stderr


def test_inference_commands_unknown_model_missing_checkpoint_bad_values(tmp_path):
    run = zoo("classify", "imdb_bigruu", "a text", cwd=tmp_path)
    assert run.returncode == 2 and "zoo classify: error: " in run.stderr and "imdb_bigru" in run.stderr
    assert "Traceback" not in run.stderr
    run = zoo("sample", "--ckpt", str(tmp_path / "nope.ckpt"), cwd=tmp_path)
    assert run.returncode == 2 and "nope.ckpt does not exist" in run.stderr and "Traceback" not in run.stderr
    run = zoo("translate", "--ckpt", str(tmp_path / "nope.ckpt"), "x", "--beam_size", "0", cwd=tmp_path)
    assert run.returncode == 2 and "--beam_size must be >= 1" in run.stderr
    run = zoo("caption", cwd=tmp_path)
    assert run.returncode == 2 and "NAME_OR_FOLDER" in run.stderr and "--ckpt" in run.stderr


def test_command_table(tmp_path):
    run = zoo("--help", cwd=tmp_path)
    assert run.returncode == 0
    for name in (
        "fit",
        "validate",
        "test",
        "predict",
        "sample",
        "classify",
        "translate",
        "caption",
        "label-frames",
        "visualize",
        "export",
        "extract-frames",
        "frame-features",
        "models",
    ):
        assert any(line.split()[:1] == [name] and len(line.split()) > 1 for line in run.stdout.splitlines()), name
    run = zoo("fitt", cwd=tmp_path)
    assert run.returncode == 2 and "did you mean fit" in run.stderr
    assert zoo(cwd=tmp_path).returncode == 2


def test_commands_are_imported_only_when_called():
    """`import zoo.cli` imports no command, and `zoo fit` none of the captioner's or the video's modules."""
    code = (
        "import sys, zoo.cli, zoo.cli.fit; "
        "bad = [m for m in sys.modules if m.startswith(('zoo.tasks.captioner', 'zoo.tasks.frame_classifier', 'timm', "
        "'datamodules.coco_captions', 'datamodules.video', 'zoo.cli.caption', 'zoo.cli.sample'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
