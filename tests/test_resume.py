"""Exact resume: a `zoo fit` killed with SIGKILL (mid-epoch, during validation, while writing a checkpoint)
and resumed with ``--ckpt_path last`` logs the same training losses, step for step (1e-6), as the run that
was never interrupted -- for the character LM (stream positions, carried state) and the classifier
(bucketed batches: order and position). Plus the pieces in-process: the sampler's and the streams'
resume position, the datamodule's recorded position, the per-step seeds, the atomic checkpoint write."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
import yaml

from datamodules.char_corpus import StreamWindows
from datamodules.loaders import BucketBatchSampler
from tests.fixtures import imdb_members, write_tar
from zoo.resume import AtomicCheckpointIO, step_seed

REPO = Path(__file__).resolve().parents[1]


# ---- the pieces, in-process ---------------------------------------------------------------------------
def test_bucket_sampler_resumes_the_epoch_it_was_stopped_in():
    lengths = torch.randint(1, 50, (200,), generator=torch.Generator().manual_seed(0)).tolist()
    for world in (1, 2):
        for rank in range(world):
            uninterrupted = BucketBatchSampler(None, 8, lengths=lengths, seed=3, num_replicas=world, rank=rank)
            uninterrupted.set_epoch(2)
            resumed = BucketBatchSampler(None, 8, lengths=lengths, seed=3, num_replicas=world, rank=rank, resume=(2, 5))
            assert list(resumed) == list(uninterrupted)[5:]  # epoch 2's order, from batch 5 on
            assert len(resumed) == len(uninterrupted)  # Lightning counts the whole epoch
            for epoch in (3, 4):  # then epochs as usual
                resumed.set_epoch(epoch)
                uninterrupted.set_epoch(epoch)
                assert list(resumed) == list(uninterrupted)


def test_stream_windows_resume_at_a_window_once():
    streams = torch.arange(4 * 50).view(4, 50)
    windows = list(StreamWindows(streams, 8))
    resumed = StreamWindows(streams, 8, resume_at=3)
    for got, want in zip(list(resumed), windows[3:], strict=True):
        assert torch.equal(got["ids"], want["ids"]) and torch.equal(got["index"], want["index"])
    assert len(list(resumed)) == len(windows)  # the next epoch starts at the first window


def test_step_seeds_differ_by_step_batch_and_rank():
    seeds = {step_seed(7, step, batch, rank) for step in range(50) for batch in range(3) for rank in range(4)}
    assert len(seeds) == 50 * 3 * 4 and all(0 <= s < 2**63 for s in seeds)
    assert step_seed(7, 3, 1, 0) == step_seed(7, 3, 1, 0) != step_seed(8, 3, 1, 0)


def test_atomic_checkpoint_write_leaves_the_old_file_whole_when_interrupted(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "ckpt" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)

    def interrupted(src, dst):
        raise KeyboardInterrupt  # what a kill between the write and the rename looks like in-process

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind
    io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 2


# ---- `zoo fit` killed and resumed, against the uninterrupted run --------------------------------------
def fit_config(model: dict, data: dict, logs: Path, checkpoints: Path, max_epochs: int, kill: Optional[dict] = None) -> dict:
    callbacks = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(checkpoints), "save_last": True, "save_top_k": 0, "every_n_train_steps": 1},
        }
    ]
    if kill is not None:
        callbacks.append({"class_path": "tests.kill_hooks.KillAt", "init_args": kill})
    return {
        "seed_everything": 7,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": max_epochs,
            "log_every_n_steps": 1,
            "limit_val_batches": 3,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            # flushed every step: a killed run's losses are on disk up to the kill
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(logs), "name": "run", "flush_logs_every_n_steps": 1},
            },
            "callbacks": callbacks,
        },
        "model": model,
        "data": data,
    }


def zoo_fit(tmp_path: Path, name: str, config: dict, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", "fit", "--config", str(path), *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def train_losses(logs: Path) -> Dict[int, float]:
    """``{step: train/loss}`` from a CSVLogger folder."""
    (metrics,) = logs.glob("run/version_*/metrics.csv")
    with metrics.open() as f:
        return {int(row["step"]): float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")}


def last_step(checkpoints: Path) -> int:
    return int(torch.load(checkpoints / "last.ckpt", weights_only=True, map_location="cpu")["global_step"])


def killed_and_resumed(tmp_path: Path, model: dict, data: dict, max_epochs: int, kills: List[dict]) -> List[Dict[int, float]]:
    """Run ``zoo fit`` with each of ``kills`` in turn, every run after the first resuming the previous one
    with ``--ckpt_path last``, then a last resumed run to the end; the losses each resumed run logged
    (up to its kill)."""
    checkpoints = tmp_path / "killed_ckpt"
    segments = []
    for i, kill in enumerate([*kills, None]):
        logs = tmp_path / f"logs_segment{i}"
        run = zoo_fit(
            tmp_path,
            f"segment{i}",
            fit_config(model, data, logs, checkpoints, max_epochs, kill),
            *(["--ckpt_path", "last"] if i else []),
        )
        if kill is None:
            assert run.returncode == 0, run.stderr[-3000:]
        else:
            assert run.returncode == -signal.SIGKILL, f"the run was not killed at {kill}:\n{run.stderr[-3000:]}"
            assert last_step(checkpoints) == kill["step"]  # last.ckpt is whole, and the kill's step
        if i:
            segments.append(train_losses(logs))
    return segments


def assert_resumed_exactly(uninterrupted: Dict[int, float], segments: List[Dict[int, float]], resumed_from: List[int]) -> None:
    for start, losses in zip(resumed_from, segments):
        assert losses and min(losses) == start  # the resumed run logs from the step after its checkpoint
        for step, loss in losses.items():
            assert loss == pytest.approx(uninterrupted[step], abs=1e-6, rel=0), f"step {step} after resuming from step {start}"
    assert max(segments[-1]) == max(uninterrupted)  # and it ran to the end


@pytest.mark.slow
def test_char_lm_killed_mid_epoch_and_while_checkpointing_resumes_exactly(tmp_path, tiny_corpus):
    """The LM's streams continue where they stopped, from the carried state, with the same dropout masks:
    killed while writing the checkpoint of step 11 (last.ckpt still holds step 10, whole), resumed, then
    killed mid-epoch in the second epoch at step 40, resumed to the end."""
    model = {
        "class_path": "zoo.tasks.language_model.CharLanguageModel",
        "init_args": {"cell": "lstm", "embedding_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.2, "warmup_steps": 3},
    }
    data = {
        "class_path": "datamodules.char_corpus.CharCorpusDataModule",
        "init_args": {"corpus": str(tiny_corpus), "batch_size": 4, "seq_len": 32, "max_chars": 4000},
    }
    full = zoo_fit(tmp_path, "full", fit_config(model, data, tmp_path / "logs_full", tmp_path / "full_ckpt", 2))
    assert full.returncode == 0, full.stderr[-3000:]
    uninterrupted = train_losses(tmp_path / "logs_full")
    assert len(uninterrupted) == 2 * 29  # 3600 training characters in 4 streams of 29 windows of 32, two epochs
    segments = killed_and_resumed(tmp_path, model, data, 2, [{"step": 10, "where": "checkpoint"}, {"step": 40, "where": "train"}])
    assert list((tmp_path / "killed_ckpt").glob(".last.ckpt.*"))  # the first kill came between the write and the rename
    assert_resumed_exactly(uninterrupted, segments, [10, 40])


@pytest.mark.slow
def test_classifier_killed_mid_epoch_and_during_validation_resumes_exactly(tmp_path):
    """The bucketed batches continue in the same order from the same position (in epoch 1: the order is
    epoch 1's, not epoch 0's), with the same dropout masks: killed mid-epoch at step 13, resumed, killed
    during the validation after step 18 (the end of epoch 1), resumed to the end."""
    archive = write_tar(tmp_path / "aclImdb_v1.tar.gz", imdb_members(per_class=20))
    model = {
        "class_path": "zoo.tasks.classifier.SequenceClassifier",
        "init_args": {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.3, "embedding_dropout": 0.2, "warmup_steps": 3},
    }
    data = {
        "class_path": "datamodules.imdb.IMDBDataModule",
        "init_args": {
            "root": str(archive),
            "cache_dir": str(tmp_path / "cache"),
            "batch_size": 4,
            "min_frequency": 1,
            "bucket_batches": 2,
        },
    }
    full = zoo_fit(tmp_path, "full", fit_config(model, data, tmp_path / "logs_full", tmp_path / "full_ckpt", 3))
    assert full.returncode == 0, full.stderr[-3000:]
    uninterrupted = train_losses(tmp_path / "logs_full")
    steps_per_epoch = len(uninterrupted) // 3
    assert steps_per_epoch * 3 == len(uninterrupted) and steps_per_epoch >= 6
    kills = [{"step": steps_per_epoch + 4, "where": "train"}, {"step": 2 * steps_per_epoch, "where": "validation"}]
    segments = killed_and_resumed(tmp_path, model, data, 3, kills)
    assert_resumed_exactly(uninterrupted, segments, [k["step"] for k in kills])
