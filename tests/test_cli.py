"""`zoo fit` end to end, in subprocesses (as a user runs it): a fit then a sample, --print_config, W&B
offline, resume after SIGKILL, DDP. Errors: test_cli_errors.py; inference commands: test_cli_inference.py."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # end-to-end runs of the `zoo` command in subprocesses: `python -m pytest -m slow`

RECIPE = str(REPO / "recipes" / "char_lm.yaml")
TINY = [
    "--model.init_args.hidden_size",
    "16",
    "--model.init_args.embedding_dim",
    "8",
    "--data.init_args.batch_size",
    "4",
    "--data.init_args.seq_len",
    "16",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
]


def worktree_env(**extra: str) -> dict:
    """The environment of a subprocess: this checkout's ``zoo`` and ``datamodules`` first."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **extra}


def zoo(*args, cwd, env=None, timeout=240):
    full_env = worktree_env(WANDB_MODE="offline", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def test_fast_dev_run_then_sample(tiny_corpus, tmp_path):
    run = zoo(
        "fit",
        "--config",
        RECIPE,
        "--data.init_args.corpus",
        str(tiny_corpus),
        *TINY,
        "--trainer.fast_dev_run",
        "true",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sample (end of training" in run.stdout


def test_print_config_applies_overrides(tmp_path):
    run = zoo("fit", "--config", RECIPE, "--model.cell", "gru", "--print_config", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "cell: gru" in run.stdout and "CharLanguageModel" in run.stdout


def test_wandb_without_credentials_logs_offline_and_says_where(tiny_corpus, tmp_path):
    env = {k: v for k, v in worktree_env().items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), PYTHONUNBUFFERED="1")  # no ~/.netrc, no API key, no WANDB_MODE
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo.cli",
            "fit",
            "--config",
            RECIPE,
            "--data.init_args.corpus",
            str(tiny_corpus),
            *TINY,
            "--trainer.max_steps",
            "2",
            "--trainer.limit_val_batches",
            "1",
            "--trainer.val_check_interval",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "W&B: logged offline to" in run.stdout and "wandb sync" in run.stdout
    run_dirs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1 and list(run_dirs[0].glob("*.wandb"))


def test_sigkill_mid_epoch_then_resume_with_ckpt_path_last(tiny_corpus, tmp_path):
    args = [
        "fit",
        "--config",
        RECIPE,
        "--data.init_args.corpus",
        str(tiny_corpus),
        *TINY,
        "--trainer.max_steps",
        "60",
        "--trainer.max_epochs",
        "100",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.dirpath",
        "checkpoints/char_lm",
        "--trainer.callbacks.save_last",
        "true",
        "--trainer.callbacks.save_top_k",
        "0",
        "--trainer.callbacks.every_n_train_steps",
        "5",
    ]
    env = worktree_env(WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo.cli", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = tmp_path / "checkpoints" / "char_lm" / "last.ckpt"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=True, map_location="cpu")["global_step"] >= 10:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
    assert 10 <= killed_at < 60  # killed mid-run, with a complete last.ckpt on disk
    run = zoo(*args, "--ckpt_path", "last", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Restoring states from the checkpoint path" in run.stdout + run.stderr
    assert f"last checkpoint: {(tmp_path / 'checkpoints' / 'char_lm' / 'last.ckpt').resolve()}" in run.stdout  # after fit
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == 60


def test_two_process_cpu_ddp_fit(tiny_corpus, tmp_path):
    run = zoo(
        "fit",
        "--config",
        RECIPE,
        "--data.init_args.corpus",
        str(tiny_corpus),
        *TINY,
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.max_steps",
        "3",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.val_check_interval",
        "3",
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in out
