"""FrameClassifier: causality, padding invariance, the baseline, clip targets, features, checkpoints,
and the CLI end to end on MovingShapes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.tasks.frame_classifier import FrameClassifier

REPO = Path(__file__).resolve().parents[1]


def model(**overrides) -> FrameClassifier:
    args = dict(label_names=["red", "green", "blue", "white"], encoder="zoo_frame_cnn", hidden_size=16, cell="gru")
    args.update(overrides)
    torch.manual_seed(0)
    return FrameClassifier(**args).eval()


def frames(batch: int = 2, time: int = 7, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, time, 3, 32, 32), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize(
    "cell,backend", [("rnn", "native"), ("gru", "native"), ("lstm", "native"), ("gru", "cells"), ("lstm", "cells")]
)
def test_unidirectional_output_never_sees_the_future(cell, backend):
    m = model(cell=cell, backend=backend, num_layers=2)
    x = frames()
    with torch.no_grad():
        before = m(x)
        for t in range(x.shape[1] - 1):
            changed = x.clone()
            changed[:, t + 1 :] = frames(seed=t + 1)[:, t + 1 :]
            after = m(changed)
            torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
            assert not torch.allclose(after[:, t + 1], before[:, t + 1])  # the change does arrive


def test_bidirectional_and_baseline_dependencies():
    x = frames()
    changed = x.clone()
    changed[:, -1] = frames(seed=9)[:, -1]
    with torch.no_grad():
        bi = model(bidirectional=True)
        assert not torch.allclose(bi(x)[:, 0], bi(changed)[:, 0])  # offline: the future counts
        base = model(recurrent=False)
        before, after = base(x), base(changed)
    torch.testing.assert_close(after[:, :-1], before[:, :-1], rtol=0, atol=0)  # each frame alone
    assert base.rnn is None and isinstance(base.encoder.backbone, type(model().encoder.backbone))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"cell": "lstm", "bidirectional": True},
        {"recurrent": False},
        {"target": "clip"},
        {"target": "clip", "bidirectional": True, "cell": "lstm"},
        {"backend": "cells", "bidirectional": True},
    ],
)
def test_padding_never_leaks(overrides):
    m = model(**overrides)
    short, long = frames(1, 4, seed=1), frames(1, 7, seed=2)
    padded = torch.cat([torch.cat([short, frames(1, 3, seed=3)], 1), long])  # garbage, not zeros, after the end
    lengths = torch.tensor([4, 7])
    with torch.no_grad():
        alone_short, alone_long = m(short), m(long)
        together = m(padded, lengths)
    if m.hparams.target == "clip":
        torch.testing.assert_close(together[0], alone_short[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(together[1], alone_long[0], rtol=1e-5, atol=1e-5)
    else:
        torch.testing.assert_close(together[0, :4], alone_short[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(together[1], alone_long[0], rtol=1e-5, atol=1e-5)


def test_precomputed_features_and_clip_scores():
    m = model(encoder=None, feature_dim=10)
    features = torch.randn(3, 5, 10)
    with torch.no_grad():
        logits = m(features, torch.tensor([5, 2, 1]))
    assert logits.shape == (3, 5, 4)
    scores = FrameClassifier.clip_scores(logits, torch.tensor([5, 2, 1]))
    torch.testing.assert_close(scores[2], logits[2, 0].log_softmax(-1))
    with pytest.raises(ValueError, match="precomputed features"):
        m(frames())


def test_train_save_load_and_features_roundtrip(tmp_path):
    import lightning as L

    from datamodules.loaders import pad_clips
    from datamodules.moving_shapes import MovingShapesDataModule
    from datamodules.video_frames import VideoFramesDataModule
    from zoo.tasks.base import load_task

    dm = MovingShapesDataModule(memory=4, num_train=8, num_val=4, num_test=4, batch_size=4)
    m = FrameClassifier(encoder="zoo_frame_cnn", hidden_size=8)  # label names and frame size from the datamodule
    trainer = L.Trainer(
        max_steps=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(m, dm)
    assert m.hparams.label_names == dm.label_names and m.hparams.frame_size == 32
    metrics = trainer.validate(m, dm, verbose=False)[0]
    assert {"val/frame_acc", "val/clip_acc", "val/memory_acc", "val/loss"} <= set(metrics)
    batch = next(iter(dm.val_dataloader()))
    predictions = m.eval().predict_step(batch, 0)
    assert len(predictions) == 4 and predictions[0]["probs"].shape == (int(batch["lengths"][0]), 4)
    assert set(predictions[0]["labels"]) <= set(dm.label_names) and predictions[0]["video"] == "val/0"
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = load_task(tmp_path / "m.ckpt", FrameClassifier)
    x = frames()
    torch.testing.assert_close(loaded(x), m.eval()(x))

    splits = {"train": dm.datasets["train"], "val": dm.datasets["val"]}
    out = m.save_features(splits, tmp_path / "features")
    fdm = VideoFramesDataModule(str(out), labels=str(out / "labels.csv"), num_frames=32, batch_size=4, eval_sampling="start")
    fdm.setup()
    assert fdm.feature_dim == 64 and set(fdm.label_names) <= set(dm.label_names) and len(fdm.splits["val"]) == 4
    batch = next(iter(fdm.val_dataloader()))
    original = pad_clips([dm.datasets["val"][i] for i in range(4)])
    assert torch.equal(batch["needs_memory"], original["needs_memory"])
    fm = FrameClassifier(label_names=fdm.label_names, encoder=None, feature_dim=fdm.feature_dim, hidden_size=8)
    assert fm(batch["features"], batch["lengths"]).shape[:2] == batch["labels"].shape


@pytest.mark.slow
def test_cli_fast_dev_run_on_moving_shapes(tmp_path):
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(tmp_path))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo.cli",
            "fit",
            "--config",
            "recipes/video_frames_shapes.yaml",
            "--trainer.fast_dev_run",
            "true",
            "--trainer.default_root_dir",
            str(tmp_path),
        ],  # config.yaml lands there, not in the repository
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val/memory_acc" in result.stdout + result.stderr


def test_predict_labels_raw_clips_from_files_folders_and_arrays(tmp_path):
    """A clip as a uint8 array, as a folder of PNG frames and as an (almost lossless) video file:
    one label per frame, the same as the model's own forward pass on the frames."""
    import av
    import numpy as np
    from PIL import Image

    from datamodules.moving_shapes import render_clip

    m = model(frame_size=32)
    clip = render_clip(0, "val", 3, memory=4, size=32, num_colors=4, distractors=1)
    array = clip["frames"].permute(0, 2, 3, 1).numpy()  # (T, H, W, 3) uint8
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(array):
        Image.fromarray(frame).save(folder / f"frame_{t:04d}.png")
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264rgb", rate=10, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "rgb24"
        for frame in array:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    by_array, by_folder, by_video = m.predict([array, folder, video])
    expected = [m.hparams.label_names[i] for i in m(clip["frames"][None]).argmax(-1)[0].tolist()]
    assert by_array["labels"] == expected and by_array["video"] == 0
    assert by_folder["labels"] == expected and by_folder["video"] == str(folder)
    assert by_video["labels"] == expected and by_video["probs"].shape == (len(array), 4)
    with pytest.raises(ValueError, match="uint8"):
        m.predict([array.astype(np.float32)])
    with pytest.raises(FileNotFoundError):
        m.predict([tmp_path / "missing.mp4"])
