"""``zoo caption NAME_OR_FOLDER [IMAGE ...]``: a caption for each image and, with an attention model,
the figure of Xu et al. (2015): one panel per word, the image lit where the model looked."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from zoo.cli import batch, common
from zoo.errors import InputError

DEFAULT_FIGURES = "captions"


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "caption",
        "Caption images: one line per image, 'image<TAB>caption<TAB>figure' ('ERROR<TAB>why' for an image "
        "that cannot be read). The attention figure (one panel per word) is written for each image unless --no-figure.",
        inputs="IMAGE",
        inputs_help="image files (JPEG, PNG, ...); none (or '-') = one path per line of stdin",
        beam=True,
        images=True,
    )
    parser.add_argument(
        "--figure",
        metavar="PATH",
        help=f"the attention figures: a .png path for one image, or a folder "
        f"for several (named <image>_attention.png; default ./{DEFAULT_FIGURES}/)",
    )
    parser.add_argument("--no-figure", action="store_true", help="print the captions only")
    common.add_draw_example(parser, "PATH", "a ShapesCaptions test image")
    status = common.draw_only(parser, argv, "zoo caption", draw_example)
    if status is not None:
        return status
    args = common.parse(parser, argv)
    common.figure_from_output("zoo caption", args)

    def run() -> int:
        given = [str(draw_example(args.draw_example)), *args.inputs] if args.draw_example else args.inputs
        items = list(batch.read_items(args, given, files=True))
        if not items:
            raise InputError("no images given (as arguments or one path per line of stdin)")
        if args.figure and args.figure.lower().endswith(".png") and len(items) > 1 and not args.no_figure:
            raise InputError(
                f"--figure {args.figure}: a .png path holds the figure of one image; give a folder for {len(items)} images"
            )
        from zoo.tasks.captioner import ImageCaptioner

        model = common.load_model(args, ImageCaptioner)

        def finish(record: Dict[str, Any]) -> Dict[str, Any]:
            if args.no_figure:
                return record
            path = write_figure(model, record["file"], record, figure_path(args.figure, record["file"], len(items)))
            return {**record, "figure": str(path)}

        return batch.run_records(
            "zoo caption",
            args,
            items,
            lambda images: model.predict(images, beam_size=args.beam_size),
            format_result,
            chunk=16,
            finish=finish,
            drop=("attention",),
            digits=6,
        )

    return common.guarded("zoo caption", run)


def draw_example(path: str | Path) -> Path:
    """Write the first image of ShapesCaptions' held-out test split (seed 2) as PNG; prints its true caption."""
    from datamodules.download import write_atomic
    from datamodules.shapes_captions import render_shapes, shapes_caption, shapes_scene

    seed, index = 2, 0  # ShapesCaptions(seed=0)'s test split: a scene the recipes never trained on
    objects = shapes_scene(seed, index)
    buffer = io.BytesIO()
    render_shapes(objects, seed, index).save(buffer, format="PNG")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
    print(f"drew a ShapesCaptions example to {path} (true caption: {' '.join(shapes_caption(objects)[0])})", file=sys.stderr)
    return path


def figure_path(figure: Optional[str], image: str, count: int) -> Path:
    """``--figure`` as the figure of one image (a .png path) or a folder of ``<stem>_attention.png``."""
    if figure and count == 1 and figure.lower().endswith(".png"):
        return Path(figure).expanduser()
    return Path(figure or DEFAULT_FIGURES).expanduser() / f"{Path(image).stem}_attention.png"


def write_figure(model: Any, image: str, result: Dict[str, Any], path: Path) -> Path:
    from zoo.viz import attention_figure

    figure = attention_figure(model.display_image(image), result["words"], result.get("attention"))
    return common.save_figure(figure, path)


def format_result(record: Dict[str, Any]) -> str:
    return f"{record['file']}\t{record['caption']}" + (f"\t{record['figure']}" if record.get("figure") else "")
