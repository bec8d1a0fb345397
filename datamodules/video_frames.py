"""Video clips for per-frame (many-to-many) and per-clip (many-to-one) classification.

Four layouts, one kind of batch:

``frames``   extracted frames, one folder per video: ``root/<video>/<number>.jpg`` (any depth:
             the video id is the folder's path relative to ``root``, e.g. ``Archery/v_Archery_g01_c01``).
             Frame numbers are the digits at the end of each file name; they must run without gaps
             (``allow_gaps=True`` takes the frames in order instead).
``videos``   video files under ``root`` (``.mp4 .avi .mkv .mov .webm ...``), decoded with PyAV
             (FFmpeg), ``num_frames`` frames sampled every ``stride`` frames or at ``fps``.
``features`` precomputed per-frame features: ``root/<video>.npy``, float ``(frames, dim)`` (written
             by :func:`zoo.tasks.frame_classifier.save_features`; read without unpickling).
``ucf101``   the UCF101 release: ``root/ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt``
             and the videos anywhere under ``root`` (or their frames, extracted by
             ``zoo extract-frames``, under ``frames_dir``). ``download=True`` fetches both
             (sha256-checked) through :mod:`datamodules.download`.

Labels (``labels=``, a CSV with a header row):

- per clip: ``video,label`` — one label for the clip (the many-to-one target, and the label of
  every frame when the model predicts per frame);
- per frame: ``video,frame,label`` — ``frame`` is the number in the file name (``frames`` layout)
  or the 0-based decoded frame index (``videos`` and ``features`` layouts). Frames without a row are
  unlabelled (``-100``: ignored by the loss and the metrics). A row for a frame that does not exist
  is an error naming the CSV line. An optional ``needs_memory`` column (0/1) marks frames whose
  label cannot be read from the frame alone; batches then carry ``needs_memory`` and the frame
  classifier reports ``val/memory_acc`` on them.
- an optional ``split`` column (``train``/``val``/``test``); without it ``val_fraction`` of the
  videos (chosen by ``seed``) are held out for validation, also used for testing.
- without a CSV the label is the name of the folder holding each video (``root/<class>/<video>``).

A batch is a dict: ``frames`` uint8 ``(B, T, 3, H, W)`` (or ``features`` float ``(B, T, F)``),
``lengths`` ``(B,)``, ``labels`` ``(B, T)`` (``-100`` at padding and unlabelled frames),
``clip_labels`` ``(B,)``, ``video`` (list of ids), ``index`` ``(B,)`` (position in the split). Clips of different lengths are zero-padded at the
end; ``lengths`` tell the model where each clip stops, and nothing at a padded step reaches a real
one. Frames are resized (short side ``size``) and centre-cropped to ``size`` x ``size``;
normalisation is the model's job (it knows its backbone), so the data stay model-free.

Decoding and frame folders: :mod:`datamodules.video_io`; batches: :func:`datamodules.loaders.pad_clips`.
Bad input fails with the file at fault in the message: an unreadable or zero-length video, a frame
folder with gaps, a label for a frame or video that does not exist, an empty folder.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .download import data_dir, extract, fetch
from .errors import DataFormatError, InputError, MissingDataError
from .loaders import IGNORE, SplitLoaders, pad_clips
from .video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, count_frames, decode_video, list_frames, load_frame, probe_video

__all__ = [
    "LAYOUTS",
    "Clip",
    "VideoClips",
    "VideoFramesDataModule",
    "download_ucf101",
    "read_labels",
    "read_ucf101_split",
    "scan",
]

LAYOUTS = ("auto", "frames", "videos", "features", "ucf101")

# UCF101 (Soomro, Zamir & Shah 2012). The split lists come from the dataset's home. The videos are
# published there only as a RAR archive (UCF101.rar, 6.5 GB) with no checksum, which the zoo cannot
# unpack safely without an external tool; we fetch the zip of the same videos that TensorFlow
# Datasets uses, so that download.extract's safe unzip applies. Both sha256 values are the ones
# TensorFlow Datasets records for these URLs; they could not be verified on the machine that wrote
# this (no network): see docs/results.md (video section).
UCF101_SPLITS_URL = "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip"
UCF101_SPLITS_SHA256 = "5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27"
UCF101_VIDEOS_URL = "https://storage.googleapis.com/thumos14_files/UCF101_videos.zip"
UCF101_VIDEOS_SHA256 = "dabf56f573cd19c79e096563529fec8126a2a34e18e10c72eb621dd687532b0d"
UCF101_RAR_URL = "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"  # the original; unpack it into root yourself


# ---- clips, labels -----------------------------------------------------------------------------
@dataclass
class Clip:
    video: str  # id: path relative to root, posix, without suffix
    path: Path  # frame folder, video file or .npy file
    kind: str  # "frames" | "video" | "features"
    label: Optional[str] = None  # the clip's label (a class name)
    frame_labels: Dict[int, str] = field(default_factory=dict)  # frame number -> class name
    memory_frames: Optional[set] = None  # frames whose label needs memory (CSV column needs_memory)
    split: Optional[str] = None


def _video_id(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return (rel.with_suffix("") if path.is_file() else rel).as_posix()


def _walk(root: Path) -> Iterable[Tuple[Path, List[str]]]:
    """``(folder, file names)`` under ``root``, hidden files and folders skipped, in sorted order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield Path(dirpath), sorted(f for f in filenames if not f.startswith("."))


def scan(root: Path, layout: str) -> Tuple[str, Dict[str, Clip]]:
    """Find the clips under ``root``: ``(layout, {video id: Clip})``. ``auto`` picks ``ucf101`` when
    ``root/ucfTrainTestlist`` exists, else whichever of videos, ``.npy`` files or images it finds."""
    if not root.is_dir():
        raise MissingDataError(f"video root {root} is not a folder")
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}: expected one of {LAYOUTS}")
    if layout == "auto" and (root / "ucfTrainTestlist").is_dir():
        layout = "ucf101"
    videos: List[Path] = []
    arrays: List[Path] = []
    folders: List[Path] = []
    for folder, names in _walk(root):
        suffixes = {os.path.splitext(n)[1].lower() for n in names}
        videos += [folder / n for n in names if os.path.splitext(n)[1].lower() in VIDEO_SUFFIXES]
        arrays += [folder / n for n in names if n.endswith(".npy")]
        if suffixes & set(IMAGE_SUFFIXES):
            folders.append(folder)
    if layout == "auto":
        layout = "videos" if videos else "features" if arrays else "frames" if folders else ""
        if not layout:
            raise MissingDataError(f"{root} holds no videos ({', '.join(VIDEO_SUFFIXES)}), frame folders or .npy features")
    if layout in ("videos", "ucf101"):
        clips = {_video_id(p, root): Clip(_video_id(p, root), p, "video") for p in videos}
    elif layout == "features":
        clips = {_video_id(p, root): Clip(_video_id(p, root), p, "features") for p in arrays}
    else:
        clips = {_video_id(p, root): Clip(_video_id(p, root), p, "frames") for p in folders}
    if not clips and layout != "ucf101":
        raise MissingDataError(f"no clips found under {root} (layout {layout!r})")
    return layout, clips


def _lookup(clips: Dict[str, Clip], name: str) -> Optional[Clip]:
    """A clip by its id (``Archery/v_01``), or by its file name under root (``Archery/v_01.avi``)."""
    name = name.strip().replace("\\", "/").strip("/")
    if name in clips:
        return clips[name]
    path = Path(name)
    if path.suffix.lower() in VIDEO_SUFFIXES + (".npy",):
        return clips.get(path.with_suffix("").as_posix())
    return None


def read_labels(csv_path: Path, clips: Dict[str, Clip]) -> None:
    """Attach the labels of a CSV (``video,label`` or ``video,frame,label``, optional ``split``) to
    ``clips``. Videos the CSV does not name are dropped; names it gives that are not there fail."""
    if not csv_path.is_file():
        raise MissingDataError(f"labels file {csv_path} does not exist")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        if not {"video", "label"} <= columns:
            raise DataFormatError(
                f"{csv_path}: the header must name the columns video,label (per clip) or "
                f"video,frame,label (per frame), optionally split; got {reader.fieldnames}"
            )
        per_frame = "frame" in columns
        named = set()
        for row in reader:
            line = reader.line_num
            clip = _lookup(clips, row["video"] or "")
            if clip is None:
                raise MissingDataError(f"{csv_path}:{line}: video {row['video']!r} is not among the clips found")
            label = (row["label"] or "").strip()
            if not label:
                raise DataFormatError(f"{csv_path}:{line}: empty label")
            if per_frame:
                try:
                    number = int(row["frame"])
                except (TypeError, ValueError):
                    raise DataFormatError(f"{csv_path}:{line}: frame must be an integer, got {row['frame']!r}") from None
                if number in clip.frame_labels and clip.frame_labels[number] != label:
                    raise DataFormatError(f"{csv_path}:{line}: frame {number} of {clip.video} labelled twice, differently")
                clip.frame_labels[number] = label
                if "needs_memory" in columns:
                    clip.memory_frames = clip.memory_frames or set()
                    if (row["needs_memory"] or "0").strip() not in ("0", "1"):
                        raise DataFormatError(f"{csv_path}:{line}: needs_memory must be 0 or 1, got {row['needs_memory']!r}")
                    if row["needs_memory"].strip() == "1":
                        clip.memory_frames.add(number)
            else:
                if clip.label is not None and clip.label != label:
                    raise DataFormatError(f"{csv_path}:{line}: video {clip.video} labelled twice, differently")
                clip.label = label
            split = (row.get("split") or "").strip() or None
            if split is not None:
                if split not in ("train", "val", "test"):
                    raise DataFormatError(f"{csv_path}:{line}: split must be train, val or test, got {split!r}")
                clip.split = split
            named.add(clip.video)
    for video in [v for v in clips if v not in named]:
        del clips[video]
    if not clips:
        raise DataFormatError(f"{csv_path}: no rows")
    if per_frame:
        check_frame_labels(clips.values(), csv_path)


def check_frame_labels(clips: Iterable[Clip], csv_path: Path) -> None:
    """Every labelled frame must exist: frame folders are listed, features read by shape, videos
    decoded (counted once)."""
    for clip in clips:
        if not clip.frame_labels:
            continue
        if clip.kind == "frames":
            numbers = [n for n, _ in list_frames(clip.path, allow_gaps=True)]
            have = set(numbers)
            span = f"frames {numbers[0]}..{numbers[-1]}"
        elif clip.kind == "features":
            count = np.load(clip.path, mmap_mode="r").shape[0]
            have, span = set(range(count)), f"{count} frames, numbered from 0"
        else:
            count = count_frames(clip.path)
            have, span = set(range(count)), f"{count} frames, numbered from 0"
        missing = sorted(set(clip.frame_labels) - have)
        if missing:
            raise DataFormatError(
                f"{csv_path}: labels for frames {missing[:10]} of video {clip.video}, but {clip.path} has no such frames ({span})"
            )


def read_ucf101_split(root: Path, split: int, clips: Dict[str, Clip]) -> List[str]:
    """Label ``clips`` from UCF101's official lists; returns the class names in classInd order.
    Videos are matched by file name, case-insensitively (the lists and some archives disagree on
    the case of ``HandStandPushups``)."""
    lists = root / "ucfTrainTestlist"
    class_file = lists / "classInd.txt"
    if not class_file.is_file():
        raise MissingDataError(f"{class_file} is missing: not a UCF101 root (download=True fetches the lists)")
    classes: Dict[int, str] = {}
    for line_no, line in enumerate(class_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataFormatError(f"{class_file}:{line_no}: expected '<index> <ClassName>', got {line!r}")
        classes[int(parts[0])] = parts[1]
    names = [classes[i] for i in sorted(classes)]
    by_lower = {name.lower(): name for name in names}
    by_file = {}
    for clip in clips.values():
        by_file[Path(clip.video).name.lower()] = clip
    labelled: Dict[str, Clip] = {}
    for split_name, file_name in (("train", f"trainlist{split:02d}.txt"), ("test", f"testlist{split:02d}.txt")):
        list_file = lists / file_name
        if not list_file.is_file():
            raise MissingDataError(f"{list_file} is missing (UCF101 has splits 1, 2 and 3)")
        for line_no, line in enumerate(list_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            entry = line.split()[0]
            folder, _, file = entry.rpartition("/")
            stem = Path(file).stem.lower()
            clip = by_file.get(stem)
            if clip is None:
                raise MissingDataError(f"{list_file}:{line_no}: {entry} not found under {root}")
            label = by_lower.get(folder.lower())
            if label is None:
                raise DataFormatError(f"{list_file}:{line_no}: class folder {folder!r} is not in {class_file}")
            clip.label, clip.split = label, split_name
            labelled[clip.video] = clip
    clips.clear()
    clips.update(labelled)
    return names


def download_ucf101(root: Optional[str | Path] = None, videos: bool = True) -> Path:
    """Fetch UCF101's split lists (and the videos) into ``root`` (default ``data_dir()/ucf101``)."""
    root = Path(root) if root is not None else data_dir() / "ucf101"
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "ucfTrainTestlist" / "classInd.txt").is_file():
        archive = fetch(UCF101_SPLITS_URL, UCF101_SPLITS_SHA256, folder=root)
        unpacked = extract(archive, root / ".splits")
        shutil.copytree(unpacked / "ucfTrainTestlist", root / "ucfTrainTestlist", dirs_exist_ok=True)
    if videos and not any(root.rglob("*.avi")):
        archive = fetch(UCF101_VIDEOS_URL, UCF101_VIDEOS_SHA256, folder=root)
        extract(archive, root / "videos")
    return root


# ---- datasets ----------------------------------------------------------------------------------
class VideoClips(Dataset):
    """Clips as dicts: ``frames`` (T, 3, H, W) uint8 or ``features`` (T, F), ``labels`` (T,),
    ``clip_label`` (), ``video`` (its id), ``index`` (its position in the split)."""

    def __init__(
        self,
        clips: Sequence[Clip],
        class_index: Dict[str, int],
        num_frames: int = 16,
        stride: int = 1,
        fps: Optional[float] = None,
        sampling: str = "center",
        size: Optional[int] = 112,
        allow_gaps: bool = False,
    ) -> None:
        if sampling not in ("random", "center", "start"):
            raise ValueError(f"sampling must be random, center or start, got {sampling!r}")
        if num_frames < 1 or stride < 1:
            raise ValueError(f"num_frames and stride must be >= 1, got {num_frames}, {stride}")
        self.clips, self.class_index = list(clips), class_index
        self.num_frames, self.stride, self.fps, self.sampling = num_frames, stride, fps, sampling
        self.size, self.allow_gaps = size, allow_gaps

    def __len__(self) -> int:
        return len(self.clips)

    def _start(self, total: int, span: int) -> int:
        room = max(0, total - span)
        if self.sampling == "start" or room == 0:
            return 0
        if self.sampling == "center":
            return room // 2
        return int(torch.randint(room + 1, ()).item())

    def _load(self, clip: Clip) -> Tuple[Tensor, np.ndarray]:
        span = (self.num_frames - 1) * self.stride + 1
        if clip.kind == "frames":
            frames = list_frames(clip.path, self.allow_gaps)
            start = self._start(len(frames), span)
            chosen = frames[start : start + span : self.stride][: self.num_frames]
            images = np.stack([load_frame(path, self.size) for _, path in chosen])
            shapes = {img.shape for img in images} if self.size is None else set()
            if len(shapes) > 1:
                raise DataFormatError(f"{clip.path}: frames differ in size {sorted(shapes)}; set size to resize them")
            return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), np.array([n for n, _ in chosen])
        if clip.kind == "features":
            array = np.load(clip.path, mmap_mode="r", allow_pickle=False)
            if array.ndim != 2 or array.shape[0] == 0:
                raise DataFormatError(f"{clip.path}: features must be a non-empty (frames, dim) array, got shape {array.shape}")
            start = self._start(array.shape[0], span)
            index = np.arange(start, min(array.shape[0], start + span), self.stride)[: self.num_frames]
            return torch.from_numpy(np.ascontiguousarray(array[index], dtype=np.float32)), index
        # video
        start = 0
        if self.sampling != "start":
            info = probe_video(clip.path)
            total = info.frames or int(info.duration * info.fps)
            if self.fps is not None and info.fps:
                span = int(round((self.num_frames - 1) * info.fps / self.fps)) + 1
            start = self._start(total, span) if total else 0
        images, index = decode_video(clip.path, self.num_frames, self.stride, self.fps, start, self.size)
        return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), index

    def __getitem__(self, i: int) -> Dict[str, object]:
        clip = self.clips[i]
        data, numbers = self._load(clip)
        clip_label = self.class_index[clip.label] if clip.label is not None else IGNORE
        if clip.frame_labels:
            labels = [self.class_index[clip.frame_labels[n]] if n in clip.frame_labels else IGNORE for n in numbers.tolist()]
            labels = torch.tensor(labels, dtype=torch.long)
        else:
            labels = torch.full((len(numbers),), clip_label, dtype=torch.long)
        key = "features" if clip.kind == "features" else "frames"
        item = {key: data, "labels": labels, "clip_label": torch.tensor(clip_label), "video": clip.video, "index": i}
        if clip.memory_frames is not None:
            item["needs_memory"] = torch.tensor([n in clip.memory_frames for n in numbers.tolist()], dtype=torch.bool)
        return item


class VideoFramesDataModule(SplitLoaders, L.LightningDataModule):
    """Clips of a folder (see the module docstring) in padded batches. After ``setup`` it exposes
    ``label_names`` (class names, index = label) and ``feature_dim`` (features layout; else ``None``)
    for the model, ``splits`` (the clips of each split) and ``datasets``."""

    collate_fn = staticmethod(pad_clips)

    def __init__(
        self,
        root: Optional[str] = None,
        layout: str = "auto",
        labels: Optional[str] = None,
        frames_dir: Optional[str] = None,
        ucf101_split: int = 1,
        download: bool = False,
        num_frames: int = 16,
        stride: int = 1,
        fps: Optional[float] = None,
        size: Optional[int] = 112,
        train_sampling: str = "random",
        eval_sampling: str = "center",
        allow_gaps: bool = False,
        val_fraction: float = 0.2,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        """
        Args:
            root: the data folder (see the module doc for the layouts); with ``layout: ucf101`` and
                ``download: true``, ``None`` means ``data_dir()/ucf101``.
            layout: ``auto`` (guess from the files), ``frames``, ``videos``, ``features`` or ``ucf101``.
            labels: CSV of per-clip (``video,label``) or per-frame (``video,frame,label``) labels,
                optional ``split`` column; ``None``: the parent folder's name is the label.
            frames_dir: ``ucf101`` only: read the clips from frames extracted here by
                ``zoo extract-frames`` instead of decoding the videos.
            ucf101_split: which official split (1, 2, 3): train on trainlist0N, validate and test
                on testlist0N.
            download: ``ucf101`` only: fetch the lists and videos (sha256-checked) if absent.
            num_frames: frames per clip (at most; shorter clips stay shorter and are padded).
            stride: take every ``stride``-th frame; ``fps``: sample at this frame rate instead
                (videos only).
            size: resize the short side to ``size`` and centre-crop square; ``None``: as stored.
            train_sampling, eval_sampling: where the window of a longer clip starts: ``random``,
                ``center`` or ``start``.
            allow_gaps: take frame folders with gaps in their numbering in order instead of failing.
            val_fraction: videos held out for validation when the CSV has no split column.
        """
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: expected one of {LAYOUTS}")
        if fps is not None and layout in ("frames", "features"):
            raise ValueError("fps sampling needs decoded videos; for frame folders and features use stride")
        self.save_hyperparameters()
        self.label_names: Optional[List[str]] = None
        self.feature_dim: Optional[int] = None
        self.splits: Dict[str, List[Clip]] = {}
        self.datasets: Dict[str, VideoClips] = {}

    @property
    def num_classes(self) -> int:
        if self.label_names is None:
            self.setup()
        return len(self.label_names)

    def describe_source(self) -> str:
        return f"the video data at {self._root()}"

    def _root(self) -> Path:
        hp = self.hparams
        if hp.root is None:
            if hp.layout == "ucf101" and hp.download:
                return data_dir() / "ucf101"
            raise InputError("VideoFramesDataModule needs root (a folder of frames, videos or features)")
        return Path(hp.root).expanduser()

    def prepare_data(self) -> None:
        if self.hparams.download:
            if self.hparams.layout != "ucf101":
                raise InputError("download: true is for layout: ucf101 only")
            frames_dir = self.hparams.frames_dir
            download_ucf101(self._root(), videos=not (frames_dir and Path(frames_dir).expanduser().is_dir()))

    def setup(self, stage: Optional[str] = None) -> None:
        if self.label_names is not None:
            return
        hp = self.hparams
        root = self._root()
        ucf101 = hp.layout == "ucf101" or (hp.layout == "auto" and (root / "ucfTrainTestlist").is_dir())
        if ucf101 and hp.frames_dir is not None:  # the clips are frame folders elsewhere
            if not Path(hp.frames_dir).expanduser().is_dir():
                raise MissingDataError(
                    f"frames_dir {hp.frames_dir} does not exist: extract the frames first "
                    f"(zoo extract-frames {root} {hp.frames_dir} --fps 10 --size 128), or set frames_dir: null "
                    "to decode the videos directly"
                )
            layout, (_, clips) = "ucf101", scan(Path(hp.frames_dir).expanduser(), "frames")
        else:
            layout, clips = scan(root, hp.layout)
        if layout == "ucf101":
            self.label_names = read_ucf101_split(root, hp.ucf101_split, clips)
            for clip in clips.values():
                clip.split = "val" if clip.split == "test" else clip.split
        else:
            if hp.labels is not None:
                read_labels(Path(hp.labels).expanduser(), clips)
            else:
                for clip in clips.values():
                    parent = Path(clip.video).parent
                    if parent == Path("."):
                        raise DataFormatError(
                            f"{clip.path}: no labels file given and the clip is not in a class folder "
                            "(root/<class>/<video>); pass labels: a CSV"
                        )
                    clip.label = parent.name
            names = {c.label for c in clips.values() if c.label is not None}
            names |= {label for c in clips.values() for label in c.frame_labels.values()}
            self.label_names = sorted(names)
        class_index = {name: i for i, name in enumerate(self.label_names)}
        ordered = [clips[k] for k in sorted(clips)]
        if any(c.split for c in ordered):
            splits = {s: [c for c in ordered if (c.split or "train") == s] for s in ("train", "val", "test")}
            if not splits["test"]:
                splits["test"] = splits["val"]
        else:
            order = np.random.default_rng(hp.seed).permutation(len(ordered))
            n_val = max(1, int(round(len(ordered) * hp.val_fraction))) if len(ordered) > 1 else 0
            val = {int(i) for i in order[:n_val]}
            splits = {
                "train": [c for i, c in enumerate(ordered) if i not in val],
                "val": [c for i, c in enumerate(ordered) if i in val],
            }
            splits["test"] = splits["val"]
        self.splits = splits
        common = dict(
            class_index=class_index,
            num_frames=hp.num_frames,
            stride=hp.stride,
            fps=hp.fps,
            size=hp.size,
            allow_gaps=hp.allow_gaps,
        )
        self.datasets = {
            "train": VideoClips(splits["train"], sampling=hp.train_sampling, **common),
            "val": VideoClips(splits["val"], sampling=hp.eval_sampling, **common),
            "test": VideoClips(splits["test"], sampling=hp.eval_sampling, **common),
        }
        if layout == "features" and ordered:
            self.feature_dim = int(np.load(ordered[0].path, mmap_mode="r").shape[1])
