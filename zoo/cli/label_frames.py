"""``zoo label-frames NAME_OR_FOLDER [CLIP ...]``: a label for every frame of each clip (a video file
or a folder of frames), printed as runs (``red x12, blue x3``), every frame, or JSON; optionally a
picture of the labels along time."""

from __future__ import annotations

import sys
from itertools import groupby
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from zoo.cli import batch, common
from zoo.errors import InputError


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "label-frames",
        "Label every frame of videos with a frame classifier: one line per clip, "
        "'clip<TAB>label xN, label xM, ...' (runs of the same label; 'ERROR<TAB>why' for a clip that cannot be read).",
        inputs="CLIP",
        inputs_help="video files (.mp4, .avi, ...) or folders of frames (000001.jpg, ...); "
        "none (or '-') = one path per line of stdin",
        images=True,
    )
    parser.add_argument("--every-frame", action="store_true", help="print every frame's label instead of runs")
    parser.add_argument("--batch_size", type=int, default=8, help="clips labelled at once (default 8)")
    parser.add_argument(
        "--online",
        action="store_true",
        help="label frame by frame as a live stream would (batch 1, the state carried; "
        "unidirectional models only): the same labels, computed as the frames arrive",
    )
    parser.add_argument("--strip", metavar="PNG", help="also draw the labels along time (one row per clip) here")
    common.add_draw_example(parser, "DIR", "a MovingShapes test clip as a folder of PNG frames")
    status = common.draw_only(parser, argv, "zoo label-frames", draw_example)
    if status is not None:
        return status
    args = common.parse(parser, argv)
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")

    def run() -> int:
        given = [str(draw_example(args.draw_example)), *args.inputs] if args.draw_example else args.inputs
        items = list(batch.read_items(args, given, files=True))
        if not items:
            raise InputError("no clips given (as arguments or one path per line of stdin)")
        from zoo.tasks.frame_classifier import FrameClassifier

        model = common.load_model(args, FrameClassifier)
        labelled: List[Dict[str, Any]] = []

        def finish(record: Dict[str, Any]) -> Dict[str, Any]:
            record = {**record, "video": record["file"]}  # as the user wrote it
            if "labels" in record:
                record["runs"] = runs(record["labels"])
            labelled.append(record)
            return record

        def predict(clips: List[str]) -> List[Dict[str, Any]]:
            return model.predict_online(clips) if args.online else model.predict(clips, batch_size=args.batch_size)

        status = batch.run_records(
            "zoo label-frames",
            args,
            items,
            predict,
            lambda r: format_result(r, args.every_frame),
            chunk=args.batch_size,
            finish=finish,
            digits=4,
        )
        if args.strip and labelled:
            print(
                f"label strip written to {common.save_figure(label_strip(labelled, label_order(model)), args.strip)}",
                file=sys.stderr,
            )
        return status

    return common.guarded("zoo label-frames", run)


def draw_example(path: str | Path, index: int = 0) -> Path:
    """Write clip ``index`` of MovingShapes' test split (the recipe's data: seed 0, memory 12, 32 px; clips
    no model was trained on) as a folder of lossless PNG frames ``000001.png, ...``; prints its label
    and which frames hide the disc. The folder appears only when complete."""
    import os
    import shutil
    import tempfile

    from PIL import Image

    from datamodules.moving_shapes import PALETTE, render_clip

    clip = render_clip(0, "test", index)
    dest = Path(path).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        for t, frame in enumerate(clip["frames"].permute(0, 2, 3, 1).numpy(), start=1):
            Image.fromarray(frame).save(tmp / f"{t:06d}.png")
        tmp.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    hidden = clip["needs_memory"].nonzero().flatten().add(1).tolist()
    label = list(PALETTE)[int(clip["clip_label"])]
    print(
        f"drew MovingShapes test clip {index} to {dest}/ ({len(clip['frames'])} frames; every frame's label: {label}; "
        f"the disc is hidden in frames {hidden[0]}-{hidden[-1]})"
        if hidden
        else f"drew {dest}/ (label {label})",
        file=sys.stderr,
    )
    return dest


def runs(labels: Sequence[str]) -> List[Tuple[str, int]]:
    """``["red", "red", "blue"]`` -> ``[("red", 2), ("blue", 1)]``."""
    return [(label, sum(1 for _ in group)) for label, group in groupby(labels)]


def format_result(result: Dict[str, Any], every_frame: bool = False) -> str:
    if "labels" not in result:  # a clip-level model (target: clip): one label per clip
        return f"{result['video']}\t{result['label']}"
    if every_frame:
        return f"{result['video']}\t" + " ".join(result["labels"])
    return f"{result['video']}\t" + ", ".join(f"{label} x{n}" for label, n in runs(result["labels"]))


def label_order(model: Any) -> Optional[List[str]]:
    names = getattr(model, "label_names", None) or model.hparams.get("label_names")
    return list(names) if names else None


def label_strip(results: Sequence[Dict[str, Any]], names: Optional[Sequence[str]] = None):
    """One row per clip, one cell per frame coloured by its label (a label that names a colour is drawn
    in that colour: MovingShapes' labels are colours). Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap, is_color_like
    from matplotlib.patches import Patch

    rows = [list(r["labels"]) if "labels" in r else [r["label"]] for r in results]
    seen = [label for row in rows for label in row]
    names = list(names or []) + [n for n in dict.fromkeys(seen) if n not in (names or [])]
    palette = plt.get_cmap("tab20").colors
    colours = [name if is_color_like(name) else palette[i % len(palette)] for i, name in enumerate(names)]
    width = max(len(row) for row in rows)
    grid = np.full((len(rows), width), np.nan)
    for r, row in enumerate(rows):
        grid[r, : len(row)] = [names.index(label) for label in row]
    fig, ax = plt.subplots(figsize=(min(16.0, 2.0 + 0.12 * width), 0.9 + 0.35 * len(rows)), dpi=100)
    ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=ListedColormap(colours),
        vmin=-0.5,
        vmax=len(names) - 0.5,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_yticks(range(len(rows)), [Path(str(r["video"])).name for r in results])
    ax.set_xlabel("frame")
    used = [i for i, name in enumerate(names) if name in seen]
    ax.legend(
        handles=[Patch(color=colours[i], label=names[i]) for i in used],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return fig
