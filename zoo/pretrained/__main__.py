"""``python -m zoo.pretrained``: list the registry, print its Markdown (docs/pretrained.md), or measure a
pretrained model the way its card was measured.

    python -m zoo.pretrained                       # names, whether weights ship, one line each
    python -m zoo.pretrained --markdown            # the table + cards of docs/pretrained.md
    python -m zoo.pretrained --update-docs docs/pretrained.md   # rewrite them there, between the markers
    python -m zoo.pretrained --evaluate char_lstm_shakespeare --corpus ../shared/data/tinyshakespeare/input.txt
    python -m zoo.pretrained --evaluate imdb_bilstm --imdb ../shared/data/imdb/aclImdb_dev.tar.gz
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from pathlib import Path

from zoo.hub import imdb_test_reviews, list_models, load_pretrained, model_entry, models_markdown, score_char_lm, score_classifier


BEGIN = "<!-- BEGIN GENERATED: python -m zoo.pretrained --markdown -->\n"
END = "<!-- END GENERATED -->"


def update_docs(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: markers {BEGIN.strip()!r} and {END!r} not found")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + models_markdown() + END + tail, encoding="utf-8")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.pretrained", description="The zoo's pretrained registry.")
    parser.add_argument("--markdown", action="store_true", help="print the model table and cards (docs/pretrained.md)")
    parser.add_argument("--update-docs", metavar="MD", type=Path, help="rewrite the generated part of this Markdown file")
    parser.add_argument("--evaluate", metavar="NAME_OR_PATH", help="measure a char LM (with --corpus) or an IMDB classifier (with --imdb)")
    parser.add_argument("--corpus", help="char LM: the text file (e.g. tinyshakespeare/input.txt); validation = its last 10%%")
    parser.add_argument("--imdb", help="IMDB classifier: an aclImdb tarball; its test split is scored")
    parser.add_argument("--max_windows", type=int, default=None, help="char LM: only the first windows of each stream")
    parser.add_argument("--per_label", type=int, default=None, help="IMDB: only the first reviews (by id) of each label")
    args = parser.parse_args(argv)
    if args.evaluate:
        if bool(args.corpus) == bool(args.imdb):
            parser.error("--evaluate needs exactly one of --corpus or --imdb")
        model = load_pretrained(args.evaluate)
        if args.corpus:
            result = score_char_lm(model, args.corpus, max_windows=args.max_windows)
        else:
            result = score_classifier(model, *imdb_test_reviews(args.imdb, args.per_label))
        print(json.dumps(result, indent=2))
    elif args.update_docs:
        update_docs(args.update_docs)
    elif args.markdown:
        sys.stdout.write(models_markdown())
    else:
        for name in list_models():
            entry = model_entry(name)
            print(f"{name:<28} {'weights' if entry.has_weights else 'config only':<12} {entry.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
