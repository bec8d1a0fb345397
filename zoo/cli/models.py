"""``zoo models``: the registry with its cards, its Markdown, and the scorers that measured the cards.

    zoo models                          # every model: task, headline metric, size, where the weights are
    zoo models "*imdb*" --json          # one JSON object per line
    zoo models --markdown               # the table + cards of docs/pretrained.md
    zoo models --update-docs docs/pretrained.md        # rewrite them there, between the markers
    zoo models --evaluate char_lstm_shakespeare --corpus ../shared/data/tinyshakespeare/input.txt
    zoo models --evaluate imdb_bilstm --imdb ../shared/data/imdb/aclImdb_dev.tar.gz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from zoo.cli.common import guarded
from zoo.hub.cards import model_rows, models_markdown

BEGIN = "<!-- BEGIN GENERATED: zoo models --markdown -->\n"
END = "<!-- END GENERATED -->"


def update_docs(path: Path) -> None:
    """Replace the generated part of ``path`` (between :data:`BEGIN` and :data:`END`) with
    :func:`~zoo.hub.cards.models_markdown`."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path}: markers {BEGIN.strip()!r} and {END!r} not found (the generated part goes between them)")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + models_markdown() + END + tail, encoding="utf-8")


def _size(size: Optional[int]) -> str:
    return f"{size / 2**20:.1f} MiB" if size is not None else "-"


def table(rows: List[Dict[str, Any]]) -> str:
    """The rows of :func:`~zoo.hub.cards.model_rows` as an aligned text table."""
    header = ["name", "task", "metric", "size", "weights"]
    cells = [[r["name"], r["task"], r["metric"] or "-", _size(r["size"]), r["weights"]] for r in rows]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(str(c[i]).ljust(widths[i]) for i in range(len(header))).rstrip() for c in [header, *cells]]
    return "\n".join(lines) + "\n"


def evaluate(name_or_path: str, corpus: Optional[str] = None, imdb: Optional[str] = None,
             max_windows: Optional[int] = None, per_label: Optional[int] = None) -> Dict[str, float]:
    """Measure a pretrained model the way its card was measured: a character LM on ``corpus``'s
    validation part, or an IMDB classifier on an aclImdb archive's test reviews."""
    # Imported here: listing the registry needs neither Lightning nor the datamodules.
    from zoo.tasks.base import load_pretrained

    model = load_pretrained(name_or_path)
    if corpus:
        from datamodules.char_corpus import score_char_lm

        return score_char_lm(model, corpus, max_windows=max_windows)
    from datamodules.imdb import imdb_test_reviews
    from zoo.metrics import score_classifier

    return score_classifier(model, *imdb_test_reviews(imdb, per_label))


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo models", description="The zoo's registered models and their cards.")
    parser.add_argument("pattern", nargs="?", help="only names matching this shell wildcard (e.g. '*imdb*')")
    parser.add_argument("--json", action="store_true", help="one JSON object per model and line")
    parser.add_argument("--markdown", action="store_true", help="print the model table and cards (docs/pretrained.md)")
    parser.add_argument("--update-docs", metavar="MD", type=Path, help="rewrite the generated part of this Markdown file")
    parser.add_argument("--evaluate", metavar="NAME_OR_FOLDER", help="measure a char LM (with --corpus) or an IMDB classifier (with --imdb)")
    parser.add_argument("--corpus", help="char LM: the text file (e.g. tinyshakespeare/input.txt); validation = its last 10%%")
    parser.add_argument("--imdb", metavar="ARCHIVE", help="IMDB classifier: an aclImdb tarball; its test split is scored")
    parser.add_argument("--max_windows", type=int, default=None, help="char LM: only the first windows of each stream")
    parser.add_argument("--per_label", type=int, default=None, help="IMDB: only the first reviews (by id) of each label")
    args = parser.parse_args(argv)
    return guarded("zoo models", lambda: run(parser, args))


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.evaluate:
        if bool(args.corpus) == bool(args.imdb):
            parser.error("--evaluate needs exactly one of --corpus FILE or --imdb ARCHIVE")
        result = evaluate(args.evaluate, args.corpus, args.imdb, args.max_windows, args.per_label)
        print(json.dumps(result, indent=2))
    elif args.corpus or args.imdb:
        parser.error("--corpus and --imdb go with --evaluate NAME")
    elif args.update_docs:
        update_docs(args.update_docs)
        print(f"updated {args.update_docs}")
    elif args.markdown:
        sys.stdout.write(models_markdown())
    elif args.json:
        for row in model_rows(args.pattern):
            print(json.dumps(row, ensure_ascii=False))
    else:
        sys.stdout.write(table(model_rows(args.pattern)))
    return 0
