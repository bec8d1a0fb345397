"""``zoo translate NAME_OR_FOLDER [SENTENCE ...]``: one translation per sentence, and the attention
alignment of the first as a picture (Bahdanau et al. 2015, figure 3)."""

from __future__ import annotations

import sys
from typing import List

from zoo.cli import batch, common


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "translate",
        "Translate sentences with a seq2seq model: one translation per line ('ERROR<TAB>why' for a bad input).",
        inputs="SENTENCE",
        inputs_help="sentences to translate; none (or '-') = --input, or one per line of stdin",
        beam=True,
    )
    parser.add_argument("--input", metavar="FILE", help="a text file with one sentence per line")
    parser.add_argument("--batch_size", type=int, default=64, help="sentences translated at once (default 64)")
    parser.add_argument("--alignment", metavar="PNG", help="write the attention alignment of the first sentence here")
    args = common.parse(parser, argv)
    if args.inputs and args.input:
        parser.error("give sentences as arguments or --input FILE, not both")
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")

    def run() -> int:
        items = batch.text_file_items(args.input, args) if args.input else batch.read_items(args)
        from zoo.tasks.seq2seq import Seq2Seq

        model = common.load_model(args, Seq2Seq)
        first: List[dict] = []
        cut: List[tuple] = []

        def finish(record: dict) -> dict:
            if args.alignment and not first:
                first.append(record)
                write_alignment(record, args.alignment)
            if "truncated_from" in record:
                cut.append((record.get("index", 0), record["truncated_from"]))
            return record

        status = batch.run_records(
            "zoo translate",
            args,
            items,
            lambda sentences: model.predict(sentences, beam_size=args.beam_size, batch_size=args.batch_size),
            lambda r: r["translation"],
            chunk=args.batch_size,
            finish=finish,
            drop=("attention",),
            digits=6,
        )
        if cut:  # one line: the first such sentence, and how many
            print(
                f"zoo translate: warning: {len(cut)} sentence(s) longer than the model reads were cut to "
                f"{model.max_source_tokens} source tokens (sentence {cut[0][0] + 1}: {cut[0][1]:,} tokens)",
                file=sys.stderr,
            )
        return status

    return common.guarded("zoo translate", run)


def write_alignment(result: dict, path: str) -> None:
    if result.get("attention") is None:
        print("zoo translate: this model has no attention (attention='none'): no alignment written", file=sys.stderr)
        return
    from zoo.viz import alignment_figure

    figure = alignment_figure(result["source_tokens"], result["target_tokens"], result["attention"], title=result["translation"])
    print(f"alignment written to {common.save_figure(figure, path)}", file=sys.stderr)
