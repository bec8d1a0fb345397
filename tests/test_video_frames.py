"""VideoFramesDataModule, PyAV decoding, `zoo extract-frames` and the MovingShapes generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av", reason="PyAV (pip install av) decodes the videos")

from datamodules.loaders import IGNORE, pad_clips  # noqa: E402
from datamodules.moving_shapes import MovingShapesDataModule, render_clip  # noqa: E402
from datamodules.video_frames import VideoFramesDataModule  # noqa: E402
from datamodules.video_io import VideoDecodeError, decode_video, extract_frames, find_videos, list_frames, probe_video, read_clip  # noqa: E402
from tests.fixtures import fake_ucf101, make_frames, make_video  # noqa: E402

SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"


def real_clip(name: str) -> Path:
    path = SHARED_VIDEO / name
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is absent")
    return path


# ---- the two real clips --------------------------------------------------------------------------
@pytest.mark.realdata
def test_decode_real_kinetics_clip():
    path = real_clip("demo.mp4")
    info = probe_video(path)
    assert (info.width, info.height) == (340, 256)
    frames, index = decode_video(path)  # every frame, as stored
    assert frames.shape == (280, 256, 340, 3) and frames.dtype == np.uint8
    assert index.tolist() == list(range(280))
    small, index = decode_video(path, num_frames=16, stride=4, size=112)
    assert small.shape == (16, 112, 112, 3) and index.tolist() == list(range(0, 64, 4))
    by_time, _ = decode_video(path, fps=7, size=64)  # 28 fps -> every 4th frame over 10 s
    assert abs(len(by_time) - 70) <= 1


@pytest.mark.realdata
def test_decode_real_ntu_clip():
    path = real_clip("S001C001P001R001A001_rgb.avi")
    info = probe_video(path)
    assert (info.width, info.height, round(info.fps)) == (1920, 1080, 30)
    full, _ = decode_video(path, num_frames=2)
    assert full.shape == (2, 1080, 1920, 3)
    frames, index = decode_video(path, size=32)
    assert frames.shape == (103, 32, 32, 3) and index[-1] == 102


# ---- decoding and bad videos ---------------------------------------------------------------------
def test_decode_stride_and_content(tmp_path):
    path = make_video(tmp_path / "v.avi", frames=20)
    frames, index = decode_video(path, stride=3)
    assert index.tolist() == [0, 3, 6, 9, 12, 15, 18] and frames.shape == (7, 32, 48, 3)
    assert np.allclose(frames.reshape(7, -1).mean(1), 10 * index, atol=6)  # the right frames
    _, index = decode_video(path, num_frames=3, stride=2, start=5)
    assert index.tolist() == [5, 7, 9]
    _, index = decode_video(path, fps=5)  # 10 fps video -> every other frame
    assert index.tolist() == list(range(0, 20, 2))


def test_unreadable_and_empty_videos_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 50)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    for path in (garbage, empty):
        with pytest.raises(VideoDecodeError, match=path.name):
            decode_video(path)
    # A zero-length video: a valid AVI header, then nothing (cut where the frame data would start).
    data = make_video(tmp_path / "five.avi", frames=5).read_bytes()
    no_frames = tmp_path / "zero.avi"
    no_frames.write_bytes(data[: data.index(b"movi") + 4])
    with pytest.raises(VideoDecodeError, match=r"zero\.avi.*no decodable frames"):
        decode_video(no_frames)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        decode_video(tmp_path / "missing.mp4")


# ---- frame folders and labels --------------------------------------------------------------------
def test_frame_folders_with_per_frame_labels(tmp_path):
    root = tmp_path / "frames"
    make_frames(root / "a", range(1, 6))
    make_frames(root / "b", range(1, 4))
    labels = tmp_path / "labels.csv"
    rows = ["video,frame,label,split"]
    rows += [f"a,{n},{'walk' if n < 3 else 'run'},train" for n in range(1, 6)]
    rows += ["b,1,walk,val", "b,2,run,val"]  # frame 3 of b unlabelled
    labels.write_text("\n".join(rows) + "\n")
    dm = VideoFramesDataModule(str(root), labels=str(labels), num_frames=8, size=16, batch_size=2)
    dm.setup()
    assert dm.label_names == ["run", "walk"]
    train = next(iter(dm.train_dataloader()))
    assert train["frames"].shape == (1, 5, 3, 16, 16) and train["frames"].dtype == torch.uint8
    assert train["labels"].tolist() == [[1, 1, 0, 0, 0]]
    val = next(iter(dm.val_dataloader()))
    assert val["labels"].tolist() == [[1, 0, IGNORE]] and val["lengths"].tolist() == [3]


def test_clips_of_different_lengths_are_padded(tmp_path):
    root = tmp_path / "frames"
    make_frames(root / "jump" / "x", range(1, 7))
    make_frames(root / "sit" / "y", range(0, 3))
    dm = VideoFramesDataModule(str(root), num_frames=4, stride=1, size=16, batch_size=4, val_fraction=0.5, train_sampling="start")
    dm.setup()
    batch = pad_clips([dm.datasets["train"][0], dm.datasets["val"][0]])
    assert sorted(batch["lengths"].tolist()) == [3, 4]
    short = int(batch["lengths"].argmin())
    assert (batch["frames"][short, 3] == 0).all() and batch["labels"][short, 3] == IGNORE
    assert set(batch["clip_labels"].tolist()) == {0, 1}  # class from the folder name


def test_frame_folder_with_gaps(tmp_path):
    folder = make_frames(tmp_path / "frames" / "clip", [1, 2, 4, 5])
    with pytest.raises(ValueError, match=r"clip: frame numbering has gaps.*missing.*3"):
        list_frames(folder)
    assert [n for n, _ in list_frames(folder, allow_gaps=True)] == [1, 2, 4, 5]


def test_labels_for_frames_or_videos_that_do_not_exist(tmp_path):
    root = tmp_path / "frames"
    make_frames(root / "a", range(1, 4))
    labels = tmp_path / "labels.csv"
    labels.write_text("video,frame,label\na,1,x\na,9,y\n")
    with pytest.raises(ValueError, match=r"labels\.csv.*frames \[9\] of video a.*frames 1\.\.3"):
        VideoFramesDataModule(str(root), labels=str(labels)).setup()
    labels.write_text("video,label\na,x\nnope,y\n")
    with pytest.raises(FileNotFoundError, match=r"labels\.csv:3: video 'nope'"):
        VideoFramesDataModule(str(root), labels=str(labels)).setup()


def test_video_files_with_clip_labels(tmp_path):
    root = tmp_path / "videos"
    make_video(root / "v1.avi", frames=12)
    make_video(root / "v2.mp4", frames=7)
    labels = tmp_path / "labels.csv"
    labels.write_text("video,label,split\nv1.avi,wave,train\nv2,clap,val\n")
    dm = VideoFramesDataModule(str(root), labels=str(labels), num_frames=5, stride=2, size=24)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert batch["frames"].shape == (1, 4, 3, 24, 24)  # 7 frames, stride 2 -> 0, 2, 4, 6
    assert batch["clip_labels"].tolist() == [dm.label_names.index("clap")]


# ---- UCF101 layout and zoo extract-frames -------------------------------------------------------
def test_ucf101_layout_from_videos_and_extracted_frames(tmp_path):
    root = fake_ucf101(tmp_path / "ucf101")
    dm = VideoFramesDataModule(str(root), layout="ucf101", num_frames=4, size=16)
    dm.setup()
    assert dm.label_names == ["ApplyEyeMakeup", "HandstandPushups"]
    assert [c.label for c in dm.splits["train"]] == dm.label_names
    assert [c.label for c in dm.splits["val"]] == ["HandstandPushups"]

    # What `zoo extract-frames SOURCE DEST` does: DEST/<video path under SOURCE>/000001.jpg
    frames_dir = tmp_path / "ucf101-frames"
    source = root / "UCF-101"
    videos = find_videos(source)
    assert len(videos) == 3
    for video in videos:
        extract_frames(video, frames_dir / video.relative_to(source).with_suffix(""), size=20)
    clip = frames_dir / "HandstandPushups" / "v_HandstandPushups_g01_c01"
    assert [n for n, _ in list_frames(clip)] == list(range(1, 10))
    dm = VideoFramesDataModule(str(root), layout="ucf101", frames_dir=str(frames_dir), num_frames=4, size=16)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert batch["frames"].shape == (1, 4, 3, 16, 16) and batch["clip_labels"].tolist() == [1]


def test_extract_frames_fps_and_bad_video(tmp_path):
    src = tmp_path / "src"
    make_video(src / "clip.avi", frames=20, fps=10)
    assert extract_frames(src / "clip.avi", tmp_path / "out" / "clip", fps=2) == 4  # 2 s at 2 fps
    assert len(list_frames(tmp_path / "out" / "clip")) == 4
    (src / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        extract_frames(src / "broken.mp4", tmp_path / "out" / "broken")
    assert not (tmp_path / "out" / "broken").exists() and [p.name for p in (tmp_path / "out").iterdir()] == ["clip"]


# ---- read_clip (inference) and predict batches -----------------------------------------------------
def test_read_clip_from_a_video_or_a_frame_folder(tmp_path):
    video = make_video(tmp_path / "v.avi", frames=10, width=48, height=32)
    clip = read_clip(video)
    assert clip.shape == (10, 32, 48, 3) and clip.dtype == np.uint8
    assert np.allclose(clip.reshape(10, -1).mean(1), 10 * np.arange(10), atol=6)
    assert read_clip(video, size=16, num_frames=3, stride=2).shape == (3, 16, 16, 3)
    folder = make_frames(tmp_path / "frames", range(1, 6))
    frames = read_clip(folder)
    assert frames.shape == (5, 20, 24, 3) and np.allclose(frames.reshape(5, -1).mean(1), 5 * np.arange(1, 6), atol=3)
    assert read_clip(folder, size=12).shape == (5, 12, 12, 3)
    gappy = make_frames(tmp_path / "gappy", [1, 3])
    with pytest.raises(ValueError, match="gaps"):
        read_clip(gappy)
    assert len(read_clip(gappy, allow_gaps=True)) == 2
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_clip(tmp_path / "nope.mp4")


def test_predict_batches_name_their_clips(tmp_path):
    root = tmp_path / "frames"
    for name in ("a", "b", "c"):
        make_frames(root / "jump" / name, range(1, 4))
    make_frames(root / "sit" / "d", range(1, 4))
    dm = VideoFramesDataModule(str(root), num_frames=4, size=16, batch_size=2, val_fraction=0.5)
    batches = list(dm.predict_dataloader())  # sets itself up
    assert [i for b in batches for i in b["index"].tolist()] == list(range(len(dm.datasets["test"])))
    assert [v for b in batches for v in b["video"]] == [c.video for c in dm.splits["test"]]
    shapes = MovingShapesDataModule(memory=2, num_train=2, num_val=2, num_test=3, batch_size=2)
    batch = next(iter(shapes.predict_dataloader()))
    assert batch["index"].tolist() == [0, 1] and batch["video"] == ["test/0", "test/1"]
    assert shapes.label_names == ["red", "green", "blue", "yellow"] and shapes.feature_dim is None


# ---- MovingShapes --------------------------------------------------------------------------------
def test_moving_shapes_is_deterministic_and_needs_memory():
    a, b = render_clip(7, "train", 3, memory=10), render_clip(7, "train", 3, memory=10)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(render_clip(8, "train", 3, memory=10)["frames"], a["frames"])
    clip = render_clip(0, "val", 5, memory=10, num_colors=4)
    hidden = clip["needs_memory"]
    assert not hidden[0] and hidden[-10:].all() and len(hidden) >= 12
    # The hidden frames carry no trace of the label: another colour leaves them unchanged.
    other = render_clip(0, "val", 5, memory=10, num_colors=4, color=(int(clip["clip_label"]) + 1) % 4)
    assert torch.equal(other["frames"][hidden], clip["frames"][hidden])
    assert not torch.equal(other["frames"][~hidden], clip["frames"][~hidden])


def test_moving_shapes_datamodule_batches():
    dm = MovingShapesDataModule(memory=6, num_train=8, num_val=4, batch_size=4, min_visible=2, max_visible=4)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape[:2] == (4, int(batch["lengths"].max())) and batch["frames"].shape[2:] == (3, 32, 32)
    assert set(batch["lengths"].tolist()) <= {8, 9, 10}
    assert dm.num_classes == 4 and batch["needs_memory"].shape == batch["labels"].shape
