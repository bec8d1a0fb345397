"""``zoo classify NAME_OR_FOLDER [TEXT ...]``: a label and its probabilities for each text."""

from __future__ import annotations

from typing import List

from zoo.cli import common


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "classify", "Classify texts with a sequence classifier: one line per text, 'label<TAB>probabilities<TAB>text'.",
        inputs="TEXT", inputs_help="texts to classify; none (or '-') = one text per line of stdin",
    )
    parser.add_argument("--batch_size", type=int, default=64, help="texts classified at once (default 64)")
    args = common.parse(parser, argv)
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")

    def run() -> int:
        from zoo.tasks.classifier import SequenceClassifier

        model = common.load_model(args, SequenceClassifier)
        texts = common.read_inputs(args)
        results = model.predict(texts, batch_size=args.batch_size)
        if args.json:
            lines = [common.json_line(r) for r in results]
        else:
            lines = [f"{r['label']}\t" + " ".join(f"{name}={p:.3f}" for name, p in r["probs"].items()) + f"\t{r['text'][:80]}"
                     for r in results]
        common.emit(lines, args.output)
        return 0

    return common.guarded("zoo classify", run)
