"""``zoo caption NAME_OR_FOLDER [IMAGE ...]``: a caption for each image and, with an attention model,
the figure of Xu et al. (2015): one panel per word, the image lit where the model looked."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from zoo.cli import common

DEFAULT_FIGURES = "captions"


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "caption", "Caption images: one line per image, 'image<TAB>caption<TAB>figure'. The attention "
        "figure (one panel per word) is written for each image unless --no-figure.",
        inputs="IMAGE", inputs_help="image files (JPEG, PNG, ...); none (or '-') = one path per line of stdin",
        beam=True, output_help=f"the attention figure: a .png path for one image, or a folder for several "
        f"(named <image>_attention.png; default ./{DEFAULT_FIGURES}/)",
    )
    parser.add_argument("--no-figure", action="store_true", help="print the captions only")
    common.add_draw_example(parser, "PATH", "a ShapesCaptions test image")
    status = common.draw_only(parser, argv, "zoo caption", draw_example)
    if status is not None:
        return status
    args = common.parse(parser, argv)

    def run() -> int:
        images = common.read_inputs(args) if (args.inputs or not args.draw_example) else []
        if args.draw_example:
            images = [str(draw_example(args.draw_example)), *images]
        if not images:
            raise ValueError("no images given (as arguments or one path per line of stdin)")
        from zoo.tasks.captioner import ImageCaptioner

        model = common.load_model(args, ImageCaptioner)
        lines, failed = [], 0
        for image in images:  # one at a time: a bad file is reported and the others still captioned
            try:
                result = model.predict([image], beam_size=args.beam_size)[0]
            except Exception as error:  # noqa: BLE001 - only known user errors are reported and skipped
                if common.debug() or not common.is_user_error(error):
                    raise
                print(f"zoo caption: error: {common.error_message(error)}", file=sys.stderr)
                failed += 1
                continue
            figure = None if args.no_figure else write_figure(model, image, result, figure_path(args.output, image, len(images)))
            lines.append(format_result(image, result, figure, args.json))
        common.emit(lines)  # to stdout: --output names the figures here
        return 2 if failed else 0

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


def figure_path(output: Optional[str], image: str, count: int) -> Path:
    """``--output`` as the figure of one image (a .png path) or a folder of ``<stem>_attention.png``."""
    if output and count == 1 and output.lower().endswith(".png"):
        return Path(output).expanduser()
    if output and output.lower().endswith(".png"):
        raise ValueError(f"--output {output}: a .png path holds the figure of one image; give a folder for {count} images")
    return Path(output or DEFAULT_FIGURES).expanduser() / f"{Path(image).stem}_attention.png"


def write_figure(model: Any, image: str, result: Dict[str, Any], path: Path) -> Path:
    from zoo.viz import attention_figure

    figure = attention_figure(model.display_image(image), result["words"], result.get("attention"))
    return common.save_figure(figure, path)


def format_result(image: str, result: Dict[str, Any], figure: Optional[Path], as_json: bool) -> str:
    if as_json:
        record = {**result, "image": image, **({"figure": str(figure)} if figure else {})}
        return common.json_line(record, drop=("attention",), digits=6)
    return f"{image}\t{result['caption']}" + (f"\t{figure}" if figure else "")
