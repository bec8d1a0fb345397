"""Decoding and per-frame feature extraction throughput (frames/s) on real clips, frozen encoder.

    flock /tmp/zoo-cpu.lock .venv/bin/python benchmarks/video_throughput.py            # the two shared clips
    .venv/bin/python benchmarks/video_throughput.py --videos a.mp4 b.avi --encoders resnet18 zoo_frame_cnn

Stages, each timed on its own over every frame of each clip (best of ``--repeats``):

  decode        PyAV decode + conversion to RGB at the stored resolution (frames thrown away)
  decode+resize decode, resize the short side to the encoder's input size in FFmpeg's scaler, crop
  features      the frozen encoder (eval, no grad) on the decoded frames, batches of ``--batch``
  end-to-end    decode+resize then features, one clip at a time (what feature caching costs)

Weights are random (``pretrained=False``): throughput does not depend on them, and this machine
has no network. Prints a Markdown table; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datamodules.video_io import decode_video, probe_video  # noqa: E402
from zoo.tasks.frame_classifier import FrameClassifier  # noqa: E402  (also registers zoo_frame_cnn)

SHARED = REPO.parent / "shared" / "data" / "video"
DEFAULT_VIDEOS = [SHARED / "demo.mp4", SHARED / "S001C001P001R001A001_rgb.avi"]


def decode_only(path: Path) -> int:
    import av

    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def best_of(repeats: int, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


@torch.no_grad()
def features(model: FrameClassifier, frames: torch.Tensor, batch: int) -> torch.Tensor:
    out = [model.frame_features(frames[i : i + batch].unsqueeze(0))[0] for i in range(0, len(frames), batch)]
    return torch.cat(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", nargs="+", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--encoders", nargs="+", default=["resnet18", "zoo_frame_cnn"])
    parser.add_argument("--size", type=int, default=None, help="input size (default: the encoder's own)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    videos = [v for v in args.videos if v.is_file()]
    if not videos:
        print(f"no videos found among {[str(v) for v in args.videos]}", file=sys.stderr)
        return 1

    rows = []
    for path in videos:
        info = probe_video(path)
        seconds, count = best_of(args.repeats, lambda: decode_only(path))
        rows.append(
            {
                "video": path.name,
                "resolution": f"{info.width}x{info.height}",
                "stage": "decode",
                "encoder": "-",
                "size": "-",
                "frames": count,
                "seconds": seconds,
            }
        )
        for name in args.encoders:
            model = FrameClassifier(label_names=["a", "b"], encoder=name, trainable=False, recurrent=False).eval()
            size = args.size or model.encoder.data_config()["input_size"][-1]
            t_dec, (frames, _) = best_of(args.repeats, lambda: decode_video(path, size=size, threads=args.threads))
            clip = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
            features(model, clip[: args.batch], args.batch)  # warm-up
            t_feat, _ = best_of(args.repeats, lambda: features(model, clip, args.batch))
            t_e2e, _ = best_of(
                args.repeats,
                lambda: features(
                    model,
                    torch.from_numpy(decode_video(path, size=size, threads=args.threads)[0]).permute(0, 3, 1, 2),
                    args.batch,
                ),
            )
            for stage, sec in (("decode+resize", t_dec), ("features", t_feat), ("end-to-end", t_e2e)):
                rows.append(
                    {
                        "video": path.name,
                        "resolution": f"{info.width}x{info.height}",
                        "stage": stage,
                        "encoder": name if stage != "decode+resize" else "-",
                        "size": size,
                        "frames": len(frames),
                        "seconds": sec,
                    }
                )
    seen = set()
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}\n")
    print("| video | stored | stage | encoder | input | frames | seconds | frames/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        key = (r["video"], r["stage"], r["encoder"], r["size"])
        if key in seen:
            continue
        seen.add(key)
        print(
            f"| {r['video']} | {r['resolution']} | {r['stage']} | {r['encoder']} | {r['size']} | {r['frames']} | "
            f"{r['seconds']:.2f} | {r['frames'] / r['seconds']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
