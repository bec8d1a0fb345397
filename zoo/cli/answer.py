"""``zoo answer NAME_OR_FOLDER IMAGE QUESTION [QUESTION ...]``: answer questions about an image, with
each answer's probability and, with ``--output``, the figure of every attention hop over the image."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Dict, List

from zoo.cli import batch, common
from zoo.errors import InputError


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "answer",
        "Answer questions about an image: one line per question, 'answer<TAB>probability<TAB>question' "
        "('ERROR<TAB>why' for a question the model cannot read). With a stacked-attention model, --figure draws "
        "the attention of each hop over the image.",
        inputs="IMAGE_AND_QUESTIONS",
        inputs_help="the image file, then one or more questions about it "
        "(with --draw-example: the questions only); no question = one per line of stdin",
        images=True,
    )
    parser.add_argument(
        "--figure",
        metavar="PATH",
        help="the figure of the attention hops: a .png path for one question, or a folder for several (named <image>_q<k>.png)",
    )
    parser.add_argument("--top", type=int, default=1, help="print this many most probable answers (default 1)")
    common.add_draw_example(parser, "PATH", "a ShapesVQA test image (its true question and answer go to stderr)")
    status = common.draw_only(parser, argv, "zoo answer", draw_example)
    if status is not None:
        return status
    args = common.parse(parser, argv)
    common.figure_from_output("zoo answer", args)
    if args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")

    def run() -> int:
        inputs = list(args.inputs)
        image = str(draw_example(args.draw_example)) if args.draw_example else (inputs.pop(0) if inputs else None)
        if image is None:
            raise InputError("no image given: zoo answer NAME IMAGE QUESTION [QUESTION ...]")
        from datamodules.images import load_image

        picture = load_image(image)  # once, for every question: an unreadable image stops the command here
        items = list(batch.read_items(args, inputs))
        if not items:
            raise InputError(f"no question about {image} given (as arguments after the image, or one per line of stdin)")
        if args.figure and args.figure.lower().endswith(".png") and len(items) > 1:
            raise InputError(
                f"--figure {args.figure}: a .png path holds the figure of one question; give a folder for {len(items)} questions"
            )
        from zoo.tasks.vqa import VisualQuestionAnswerer

        model = common.load_model(args, VisualQuestionAnswerer)
        noted: List[bool] = []

        def finish(record: Dict[str, Any]) -> Dict[str, Any]:
            record = {**record, "image": image}
            if record["unknown_words"]:
                words = ", ".join(repr(w) for w in record["unknown_words"])
                print(f"zoo answer: note: {words} never appeared in the training questions; read as <unk>", file=sys.stderr)
            if args.figure and record["attention"] is not None:
                path = write_figure(model, picture, record, figure_path(args.figure, image, record["index"], len(items)))
                record["figure"] = str(path)
            elif args.figure and not noted:
                noted.append(True)
                print("zoo answer: note: this model has no attention over the image; no figure written", file=sys.stderr)
            return record

        def predict(questions: List[str]) -> List[Dict[str, Any]]:
            return model.predict([(picture, q) for q in questions], top=args.top)

        return batch.run_records(
            "zoo answer", args, items, predict, format_result, chunk=16, finish=finish, drop=("attention",), digits=4
        )

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


def figure_path(figure: str, image: str, k: int, count: int) -> Path:
    """``--figure`` as the figure of one question (a .png path) or a folder of ``<stem>_q<k+1>.png``."""
    if count == 1 and figure.lower().endswith(".png"):
        return Path(figure).expanduser()
    return Path(figure).expanduser() / f"{Path(image).stem}_q{k + 1}.png"


def write_figure(model: Any, image: Any, result: Dict[str, Any], path: Path) -> Path:
    """The image, then one panel per attention hop (bright = where the hop looked)."""
    from zoo.tasks.vqa import hop_titles
    from zoo.viz import attention_figure

    title = f"{result['question']} -> {result['answer']} ({result['probability']:.2f})"
    return common.save_figure(
        attention_figure(model.display_image(image), hop_titles(len(result["attention"])), result["attention"], title=title), path
    )


def format_result(record: Dict[str, Any]) -> str:
    top = record["top"]
    probabilities = " ".join(f"{a}={p:.3f}" for a, p in top) if len(top) > 1 else f"{record['probability']:.3f}"
    return "\t".join([record["answer"], probabilities, record["question"], *([record["figure"]] if record.get("figure") else [])])
