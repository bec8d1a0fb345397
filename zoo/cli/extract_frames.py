"""``zoo extract-frames SOURCE DEST``: a folder of videos (or one video) -> ``DEST/<video>/000001.jpg``,
the frame-folder layout every video datamodule and ``zoo label-frames`` read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

from zoo.cli import common
from zoo.errors import MissingInputError


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zoo extract-frames",
        description="Extract the frames of videos into the frame-folder layout DEST/<video>/000001.jpg "
        "(the video's path under SOURCE, without its suffix, names its folder).",
    )
    parser.add_argument("source", help="a video file or a folder searched recursively for videos")
    parser.add_argument("dest", help="output folder")
    parser.add_argument("--fps", type=float, default=None, help="frames per second to keep (default: every frame)")
    parser.add_argument("--size", type=int, default=None, help="resize the short side to SIZE pixels (default: as stored)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality 1-100 (default 90)")
    parser.add_argument("--overwrite", action="store_true", help="re-extract videos whose folder already exists")
    parser.add_argument("--keep-going", action="store_true", help="report unreadable videos and go on (exit status 1 at the end)")
    args = parser.parse_args(argv)
    if args.fps is not None and args.fps <= 0:
        parser.error(f"--fps must be > 0, got {args.fps}")
    if not 1 <= args.quality <= 100:
        parser.error(f"--quality must be in 1..100, got {args.quality}")
    return common.guarded("zoo extract-frames", lambda: run(args))


def find_videos(source: Path, suffixes: tuple) -> List[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise MissingInputError(f"{source} is neither a video file nor a folder")
    return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from datamodules.video_io import VIDEO_SUFFIXES, VideoDecodeError, extract_frames

    source, dest = Path(args.source).expanduser(), Path(args.dest).expanduser()
    videos = find_videos(source, VIDEO_SUFFIXES)
    if not videos:
        raise MissingInputError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) under {source}")
    base = source if source.is_dir() else source.parent
    failed: List[str] = []
    total = 0
    with tqdm(videos, desc="videos", unit="video", file=sys.stderr) as bar:
        for video in bar:
            out = dest / video.relative_to(base).with_suffix("")
            if out.is_dir() and not args.overwrite:
                continue
            bar.set_postfix_str(video.name)
            try:
                total += extract_frames(video, out, args.fps, args.size, args.quality)
            except (VideoDecodeError, FileNotFoundError) as e:
                if not args.keep_going:
                    bar.close()
                    print(f"zoo extract-frames: error: {e}", file=sys.stderr)
                    return 1
                failed.append(str(e))
    print(f"wrote {total} frames of {len(videos) - len(failed)} videos to {dest}")
    for message in failed:
        print(f"failed: {message}", file=sys.stderr)
    return 1 if failed else 0
