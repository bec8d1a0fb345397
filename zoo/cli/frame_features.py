"""``zoo frame-features NAME_OR_FOLDER --out-dir DIR (--shapes ... | --root DIR)``: cache a trained frame
classifier's per-frame backbone features, so that later runs train the recurrent part on them alone
(``VideoFramesDataModule(root=DIR, labels=DIR/labels.csv)`` with ``FrameClassifier(encoder: null)``)."""

from __future__ import annotations

import json
from typing import Dict, List

from zoo.cli import common
from zoo.errors import InputError


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "frame-features",
        "Write the per-frame features of a trained frame classifier's backbone to --out-dir "
        "(DIR/<video>.npy + DIR/labels.csv with a split column): train on them with "
        "VideoFramesDataModule(root=DIR, labels=DIR/labels.csv) and FrameClassifier(encoder: null).",
        inputs=None,
        output=False,
    )
    parser.add_argument("--out-dir", metavar="DIR", help="the folder to write (required)")
    common.deprecated_alias(parser, "--output", "--out-dir", "out_dir")  # its old name, for one release
    parser.add_argument(
        "--shapes",
        nargs="*",
        metavar="KEY=VALUE",
        default=None,
        help="MovingShapes clips (MovingShapesDataModule arguments, e.g. memory=24 num_train=2000)",
    )
    parser.add_argument("--root", help="a video root for VideoFramesDataModule (frames, videos or ucf101)")
    parser.add_argument("--labels", help="its labels CSV")
    parser.add_argument("--size", type=int, default=112, help="frame size for --root (default 112)")
    parser.add_argument("--batch_size", "--batch", type=int, default=16, help="clips per batch (default 16)")
    args = common.parse(parser, argv)
    if not args.out_dir:
        parser.error("--out-dir DIR is required: the folder the features go to")
    if (args.shapes is None) == (args.root is None):
        parser.error("give exactly one of --shapes KEY=VALUE ... and --root DIR")
    shapes = parse_shapes(parser, args.shapes) if args.shapes is not None else None

    def run() -> int:
        from zoo.tasks.frame_classifier import FrameClassifier

        model = common.load_model(args, FrameClassifier)
        if model.encoder is None:
            raise InputError(f"{args.ckpt or args.model} reads features already (encoder: null): there is no backbone to run")
        if shapes is not None:
            from datamodules.moving_shapes import MovingShapesDataModule

            dm = MovingShapesDataModule(**shapes)
        else:
            from datamodules.video_frames import VideoFramesDataModule

            # every frame from the start of each clip: the features must cover whole videos
            dm = VideoFramesDataModule(
                args.root, labels=args.labels, num_frames=10**9, size=args.size, train_sampling="start", eval_sampling="start"
            )
        dm.setup()
        splits = {"train": dm.datasets["train"], "val": dm.datasets["val"]}
        names = dm.label_names
        out = model.save_features(splits, args.out_dir, names, batch_size=args.batch_size)
        clips = sum(len(d) for d in splits.values())
        if args.json:
            print(json.dumps({"output": str(out), "clips": clips, "splits": {k: len(v) for k, v in splits.items()}}))
        else:
            print(f"wrote features of {clips} clips to {out}")
        return 0

    return common.guarded("zoo frame-features", run)


def parse_shapes(parser, items: List[str]) -> Dict[str, int]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            options[key] = int(value)
        except ValueError:
            parser.error(f"--shapes {item}: expected KEY=INTEGER (e.g. memory=24)")
        if not sep or not key:
            parser.error(f"--shapes {item}: expected KEY=INTEGER (e.g. memory=24)")
    return options
