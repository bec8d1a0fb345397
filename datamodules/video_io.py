"""Video files and frame folders → uint8 frames: decoding (PyAV/FFmpeg), frame folders, extraction.

- :func:`probe_video` (what the container says), :func:`decode_video` (sampled frames, resized in
  FFmpeg's scaler and centre-cropped), :func:`count_frames`;
- :func:`list_frames` (a folder of numbered images, checked for gaps) and :func:`load_frame`;
- :func:`read_clip`: one clip for inference from either a video file or a frame folder;
- :func:`find_videos` and :func:`extract_frames`, which ``zoo extract-frames`` runs to turn videos
  into frame folders (``DEST/<video>/000001.jpg``).

A file that cannot be read is a :class:`VideoDecodeError` (a ``ValueError``) naming it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image

from .errors import DataFormatError, InputError, MissingInputError, summary
from .images import open_image

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoDecodeError",
    "VideoInfo",
    "count_frames",
    "decode_video",
    "extract_frames",
    "find_videos",
    "list_frames",
    "load_frame",
    "probe_video",
    "read_clip",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class VideoDecodeError(DataFormatError):
    """A video file could not be opened or decoded, or holds no frames."""


# ---- decoding ----------------------------------------------------------------------------------
def _import_av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        raise ImportError("decoding videos needs PyAV: pip install av") from None
    return av


def _scaled(width: int, height: int, size: Optional[int]) -> Tuple[int, int]:
    """Width and height after resizing the short side to ``size`` (even numbers are not needed)."""
    if size is None:
        return width, height
    scale = size / min(width, height)
    return max(size, round(width * scale)), max(size, round(height * scale))


def _center_crop(image: np.ndarray, size: Optional[int]) -> np.ndarray:
    if size is None:
        return image
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    frames: int  # from the container; 0 when it does not say
    fps: float
    duration: float  # seconds; 0.0 when unknown


def probe_video(path: str | Path) -> VideoInfo:
    """What the container says about its first video stream (no decoding)."""
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"video {path} does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream in the file")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration
                else (container.duration / 1e6 if container.duration else 0.0)
            )
            return VideoInfo(path, stream.width, stream.height, int(stream.frames or 0), fps, duration)
    except (av.FFmpegError, UnicodeDecodeError, AttributeError) as e:
        # PyAV decodes the container's metadata as UTF-8, and a stream whose codec FFmpeg could not open
        # has no codec context: its ``width`` is an AttributeError (found by tests/test_fuzz_readers.py)
        raise VideoDecodeError(f"{path}: cannot read video ({type(e).__name__}: {e})") from None


def _video_stream(container: Any, path: Path) -> Any:
    """The first video stream of an open container, decoded with FFmpeg's own threading."""
    if not container.streams.video:
        raise VideoDecodeError(f"{path}: no video stream in the file")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _sampled(
    container: Any, stream: Any, fps: Optional[float], start: int = 0, stride: int = 1, counter: Optional[List[int]] = None
) -> Iterator[Tuple[int, Any]]:
    """``(index, frame)`` of the frames kept: from frame ``start`` every ``stride``-th, or, with ``fps``,
    the first frame at or after each of the times ``start/fps_video + k / fps``. ``counter[0]`` counts
    the frames decoded."""
    rate = float(stream.average_rate or stream.guessed_rate or 30.0)
    next_time = start / rate
    for index, frame in enumerate(container.decode(stream)):
        if counter is not None:
            counter[0] += 1
        if index < start:
            continue
        if fps is not None:
            time = frame.time if frame.time is not None else index / rate
            if time + 1e-6 < next_time:
                continue
            while next_time <= time + 1e-6:
                next_time += 1.0 / fps
        elif (index - start) % stride:
            continue
        yield index, frame


def decode_video(
    path: str | Path,
    num_frames: Optional[int] = None,
    stride: int = 1,
    fps: Optional[float] = None,
    start: int = 0,
    size: Optional[int] = None,
    threads: int = 0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Decode frames of ``path`` with PyAV: ``(frames uint8 (T, H, W, 3), indices (T,))`` where
    ``indices`` are the 0-based numbers of the decoded frames that were kept.

    Sampling: from frame ``start`` keep every ``stride``-th frame, or, with ``fps``, the first frame
    at or after each of the times ``start/fps_video + k / fps``; stop after ``num_frames`` (``None``:
    to the end). ``size``: resize the short side to ``size`` (in FFmpeg's scaler, during decoding)
    and centre-crop to ``size`` x ``size``. ``threads``: FFmpeg decoding threads (0 = its default).

    Raises :class:`VideoDecodeError` naming the file when it cannot be read or holds no frames.
    """
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"video {path} does not exist")
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    if fps is not None and fps <= 0:
        raise InputError(f"fps must be > 0, got {fps}")
    frames: List[np.ndarray] = []
    kept: List[int] = []
    counter = [0]
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            if threads:
                stream.codec_context.thread_count = threads
            width = height = None
            for index, frame in _sampled(container, stream, fps, start, stride, counter):
                if width is None:
                    width, height = _scaled(frame.width, frame.height, size)
                image = frame.to_ndarray(format="rgb24", width=width, height=height)
                frames.append(_center_crop(image, size))
                kept.append(index)
                if num_frames is not None and len(frames) >= num_frames:
                    break
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise VideoDecodeError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from None
    decoded = counter[0]
    if not frames:
        if decoded == 0:
            raise VideoDecodeError(f"{path}: the video holds no decodable frames (zero-length or corrupt)")
        raise VideoDecodeError(f"{path}: no frame at or after frame {start} ({decoded} frames decoded)")
    return np.stack(frames), np.asarray(kept, dtype=np.int64)


def count_frames(path: str | Path) -> int:
    """Frames in a video, by decoding it (containers' own counts can be missing or wrong)."""
    _, indices = decode_video(path, size=16)
    return int(indices[-1]) + 1


# ---- frame folders -----------------------------------------------------------------------------
_NUMBER = re.compile(r"(\d+)$")


def list_frames(folder: str | Path, allow_gaps: bool = False) -> List[Tuple[int, Path]]:
    """The image files of a frame folder as ``(number, path)``, in number order. The number is the
    run of digits that ends the file name (``000017.jpg`` -> 17, ``img_00017.jpg`` -> 17)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise MissingInputError(f"frame folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    numbered: Dict[int, Path] = {}
    for path in files:
        match = _NUMBER.search(path.stem)
        if match is None:
            raise DataFormatError(f"{path}: frame file names must end in a frame number (e.g. 000001.jpg)")
        number = int(match.group(1))
        if number in numbered:
            raise DataFormatError(f"{folder}: two files for frame {number}: {numbered[number].name} and {path.name}")
        numbered[number] = path
    numbers = sorted(numbered)
    first, last = numbers[0], numbers[-1]
    if not allow_gaps and last - first + 1 != len(numbers):
        missing = sorted(set(range(first, last + 1)) - set(numbers))
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise DataFormatError(
            f"{folder}: frame numbering has gaps ({len(missing)} missing between {first} and {last}: "
            f"{shown}); re-extract the frames, or pass allow_gaps=True to use the frames in order"
        )
    return [(n, numbered[n]) for n in numbers]


def load_frame(path: str | Path, size: Optional[int] = None) -> np.ndarray:
    """One frame image as uint8 ``(H, W, 3)`` RGB: short side resized to ``size`` and centre-cropped
    square (``None``: as stored). JPEGs are decoded at a reduced scale when that is enough."""
    with open_image(path) as image:  # missing, unreadable, or over the pixel limit: the zoo's error
        try:
            if size is not None:
                image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it can
            image = image.convert("RGB")
            if size is not None:
                image = image.resize(_scaled(image.width, image.height, size), Image.BILINEAR, reducing_gap=2.0)
            return _center_crop(np.asarray(image), size)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataFormatError(f"{path}: cannot read image ({summary(e)})") from None


def read_clip(
    source: str | Path,
    size: Optional[int] = None,
    num_frames: Optional[int] = None,
    stride: int = 1,
    allow_gaps: bool = False,
) -> np.ndarray:
    """One clip for inference: uint8 ``(T, H, W, 3)`` RGB frames of a video file or a frame folder.

    ``size``: resize the short side to ``size`` and centre-crop square (``None``: as stored; the
    frames of a folder must then share one size). ``num_frames``: at most this many frames (``None``:
    all), every ``stride``-th from the first. A frame folder with gaps in its numbering is an error
    unless ``allow_gaps``."""
    source = Path(source).expanduser()
    if source.is_dir():
        frames = list_frames(source, allow_gaps)[::stride][:num_frames]
        images = [load_frame(path, size) for _, path in frames]
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            raise DataFormatError(f"{source}: frames differ in size {sorted(shapes)}; give a size to resize them")
        return np.stack(images)
    if not source.exists():
        raise MissingInputError(f"{source} is neither a video file nor a frame folder")
    frames, _ = decode_video(source, num_frames, stride, size=size)
    return frames


# ---- extraction (zoo extract-frames) -----------------------------------------------------------
def find_videos(source: str | Path) -> List[Path]:
    """``source`` itself if it is a file, else every video file under it (recursively), sorted."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise MissingInputError(f"{source} is neither a video file nor a folder")
    return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def extract_frames(
    video: str | Path,
    dest: str | Path,
    fps: Optional[float] = None,
    size: Optional[int] = None,
    quality: int = 90,
    progress=None,
) -> int:
    """Write the frames of ``video`` to ``dest/000001.jpg, 000002.jpg, ...`` (numbered from 1 without
    gaps). ``fps``: sample at this rate (``None`` = every frame); ``size``: resize the short side
    (no crop). The folder appears only when complete. Returns the number of frames written.
    ``progress``: anything with ``update(n)`` (a tqdm bar), told of every frame written."""
    av = _import_av()
    video, dest = Path(video), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    count = 0
    try:
        try:
            with av.open(str(video)) as container:
                stream = _video_stream(container, video)
                width = height = None
                for _, frame in _sampled(container, stream, fps):
                    if width is None:
                        width, height = _scaled(frame.width, frame.height, size)
                    image = frame.to_ndarray(format="rgb24", width=width, height=height)
                    count += 1
                    Image.fromarray(image).save(tmp / f"{count:06d}.jpg", quality=quality)
                    if progress is not None:
                        progress.update(1)
        except (av.FFmpegError, UnicodeDecodeError) as e:
            raise VideoDecodeError(f"{video}: cannot decode video ({type(e).__name__}: {e})") from None
        if count == 0:
            raise VideoDecodeError(f"{video}: the video holds no decodable frames (zero-length or corrupt)")
        tmp.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return count
