"""``zoo translate NAME_OR_FOLDER [SENTENCE ...]``: one translation per sentence, and the attention
alignment of the first as a picture (Bahdanau et al. 2015, figure 3)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

from zoo.cli import common


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "translate", "Translate sentences with a seq2seq model: one translation per line.",
        inputs="SENTENCE", inputs_help="sentences to translate; none (or '-') = --input, or one per line of stdin",
        beam=True, output_help="write the translations (one per line) to this file instead of stdout",
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
        if args.input:
            path = Path(args.input).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"--input {path} does not exist")
            from datamodules.download import read_text

            # blank lines kept: line i <-> line i
            sentences = read_text(path, "UTF-8 text, one sentence per line").splitlines()
        else:
            sentences = common.read_inputs(args)
        from zoo.tasks.seq2seq import Seq2Seq

        model = common.load_model(args, Seq2Seq)
        results = model.predict(sentences, beam_size=args.beam_size, batch_size=args.batch_size)
        cut = [(i, r["truncated_from"]) for i, r in enumerate(results) if "truncated_from" in r]
        if cut:  # one line: the first such sentence, and how many
            print(f"zoo translate: warning: {len(cut)} sentence(s) longer than the model reads were cut to "
                  f"{model.max_source_tokens} source tokens (sentence {cut[0][0] + 1}: {cut[0][1]:,} tokens)", file=sys.stderr)
        if args.alignment and results:
            write_alignment(results[0], args.alignment)
        if args.json:
            common.emit([common.json_line(r, drop=("attention",), digits=6) for r in results], args.output)
        else:
            common.emit([r["translation"] for r in results], args.output)
        return 0

    return common.guarded("zoo translate", run)


def write_alignment(result: dict, path: str) -> None:
    if result.get("attention") is None:
        print("zoo translate: this model has no attention (attention='none'): no alignment written", file=sys.stderr)
        return
    from zoo.viz import alignment_figure

    figure = alignment_figure(result["source_tokens"], result["target_tokens"], result["attention"], title=result["translation"])
    print(f"alignment written to {common.save_figure(figure, path)}", file=sys.stderr)
