"""``zoo classify NAME_OR_FOLDER [TEXT ...]``: a label and its probabilities for each text; with
``--explain FIG.png`` also a picture of which words made the prediction (leave-one-token-out)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List

from zoo.cli import batch, common


def explain_path(path: str, index: int) -> Path:
    """Where ``--explain PATH`` writes the figure of the text at position ``index``: ``PATH`` for the
    first, then ``stem_1.png``, ``stem_2.png``, ... beside it."""
    first = Path(path).expanduser()
    return first if index == 0 else first.with_name(f"{first.stem}_{index}{first.suffix or '.png'}")


def draw_effects(result: Dict[str, Any], name: str, path: Path) -> Path:
    """Draw the tokens of a :meth:`~zoo.tasks.classifier.SequenceClassifier.token_effects` result, each
    coloured by its effect, titled with the model ``name``, the label and what the colours mean."""
    from zoo.viz import token_heatmap_png

    label, shown = result["label"], len(result["tokens"])
    title = (
        f"{name}: {label} (p = {result['prob']:.3f}). Each word's background: p({label} | text) - p({label} | text without it)\n"
        f"red = pushed towards {label}, blue = pushed away, white = no effect"
    )
    if result["text_tokens"] > shown:  # say so, or the seam where truncation joined two parts reads as the text
        title += f"\nthe model reads {shown} of the text's {result['text_tokens']} tokens (cut as in training)"
    return token_heatmap_png(result["tokens"], result["effects"], path, title)


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "classify",
        "Classify texts with a sequence classifier: one line per text, 'label<TAB>probabilities<TAB>text' "
        "('ERROR<TAB>why' for a bad input).",
        inputs="TEXT",
        inputs_help="texts to classify; none (or '-') = one text per line of stdin",
    )
    parser.add_argument("--batch_size", type=int, default=64, help="texts classified at once (default 64)")
    parser.add_argument(
        "--explain",
        metavar="FIG.png",
        help="also draw each text's words (the model's tokens) coloured by how much deleting that word "
        "lowers the probability of the predicted label (red: it pushed towards the label, blue: away); "
        "one PNG per text: FIG.png for the first, FIG_1.png, FIG_2.png, ... for the next ones (by position)",
    )
    args = common.parse(parser, argv)
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")

    def run() -> int:
        from zoo.tasks.classifier import SequenceClassifier

        model = common.load_model(args, SequenceClassifier)
        name = args.model or Path(args.ckpt).name

        def explain(record: Dict[str, Any]) -> Dict[str, Any]:  # a text with no tokens: its error record
            path = draw_effects(model.token_effects(record["text"]), name, explain_path(args.explain, record["index"]))
            print(f"wrote {path}", file=sys.stderr)
            return {**record, "figure": str(path)}

        return batch.run_records(
            "zoo classify",
            args,
            batch.read_items(args),
            lambda texts: model.predict(texts, batch_size=args.batch_size),
            text_line,
            chunk=args.batch_size,
            finish=explain if args.explain else None,
        )

    return common.guarded("zoo classify", run)


def text_line(record: Dict[str, Any]) -> str:
    probabilities = " ".join(f"{name}={p:.3f}" for name, p in record["probs"].items())
    return f"{record['label']}\t{probabilities}\t{record['text'][:80]}"
