"""``zoo answer NAME_OR_FOLDER IMAGE QUESTION [QUESTION ...]``: answer questions about an image, with
each answer's probability and, with ``--output``, the figure of every attention hop over the image."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from zoo.cli import common


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "answer", "Answer questions about an image: one line per question, 'answer<TAB>probability<TAB>question'. "
        "With a stacked-attention model, --output writes the attention of each hop over the image.",
        inputs="IMAGE_AND_QUESTIONS", inputs_help="the image file, then one or more questions about it "
        "(with --draw-example: the questions only); no question = one per line of stdin",
        output_help="the figure of the attention hops: a .png path for one question, or a folder for several "
        "(named <image>_q<k>.png)",
    )
    parser.add_argument("--top", type=int, default=1, help="print this many most probable answers (default 1)")
    common.add_draw_example(parser, "PATH", "a ShapesVQA test image (its true question and answer go to stderr)")
    status = common.draw_only(parser, argv, "zoo answer", draw_example)
    if status is not None:
        return status
    args = common.parse(parser, argv)
    if args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")

    def run() -> int:
        inputs = list(args.inputs)
        image = str(draw_example(args.draw_example)) if args.draw_example else (inputs.pop(0) if inputs else None)
        if image is None:
            raise ValueError("no image given: zoo answer NAME IMAGE QUESTION [QUESTION ...]")
        questions = inputs if inputs and inputs != ["-"] else common.read_stdin_lines()
        if not questions:
            raise ValueError(f"no question about {image} given (as arguments after the image, or one per line of stdin)")
        from zoo.tasks.vqa import VisualQuestionAnswerer

        model = common.load_model(args, VisualQuestionAnswerer)
        results = model.predict([(image, q) for q in questions], top=args.top)
        lines = []
        for k, result in enumerate(results):
            if result["unknown_words"]:
                words = ", ".join(repr(w) for w in result["unknown_words"])
                print(f"zoo answer: note: {words} never appeared in the training questions; read as <unk>", file=sys.stderr)
            figure = None
            if args.output and result["attention"] is not None:
                figure = write_figure(model, image, result, figure_path(args.output, image, k, len(results)))
            lines.append(format_result(result, figure, args.json))
        if args.output and results[0]["attention"] is None:
            print("zoo answer: note: this model has no attention over the image; no figure written", file=sys.stderr)
        common.emit(lines)  # to stdout: --output names the figures here
        return 0

    return common.guarded("zoo answer", run)


def draw_example(path: str | Path) -> Path:
    """Write the image of ShapesVQA's first held-out test question (seed 2) as PNG; prints the
    question and its true answer."""
    from datamodules.download import write_atomic
    from datamodules.shapes_captions import render_shapes
    from datamodules.shapes_vqa import shapes_question

    seed, index, size = 2, 0, 64  # ShapesVQA(seed=0)'s test split, at its image size: a scene never trained on
    objects, scene, (question, answer, _, _) = shapes_question(seed, index, image_size=size)
    buffer = io.BytesIO()
    render_shapes(objects, seed, scene, size).save(buffer, format="PNG")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
    print(f"drew a ShapesVQA example to {path} (question: {question!r}, true answer: {answer})", file=sys.stderr)
    return path


def figure_path(output: str, image: str, k: int, count: int) -> Path:
    """``--output`` as the figure of one question (a .png path) or a folder of ``<stem>_q<k>.png``."""
    if count == 1 and output.lower().endswith(".png"):
        return Path(output).expanduser()
    if output.lower().endswith(".png"):
        raise ValueError(f"--output {output}: a .png path holds the figure of one question; give a folder for {count} questions")
    return Path(output).expanduser() / f"{Path(image).stem}_q{k + 1}.png"


def write_figure(model: Any, image: str, result: Dict[str, Any], path: Path) -> Path:
    """The image, then one panel per attention hop (bright = where the hop looked)."""
    from zoo.tasks.vqa import hop_titles
    from zoo.viz import attention_figure

    title = f"{result['question']} -> {result['answer']} ({result['probability']:.2f})"
    return common.save_figure(attention_figure(model.display_image(image), hop_titles(len(result["attention"])), result["attention"], title=title), path)


def format_result(result: Dict[str, Any], figure: Optional[Path], as_json: bool) -> str:
    if as_json:
        record = {k: v for k, v in result.items() if k != "attention"}
        if figure is not None:
            record["figure"] = str(figure)
        return common.json_line(record, digits=4)
    top = result["top"]
    probabilities = " ".join(f"{a}={p:.3f}" for a, p in top) if len(top) > 1 else f"{result['probability']:.3f}"
    return "\t".join([result["answer"], probabilities, result["question"], *([str(figure)] if figure is not None else [])])
