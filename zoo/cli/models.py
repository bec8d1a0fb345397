"""``zoo models``: the registry with its cards, its Markdown, and the scorers that measured the cards.

zoo models                          # every model: task, headline metric, size, where the weights are
zoo models "*imdb*" --json          # one JSON object per line
zoo models --markdown               # the table + cards of docs/pretrained.md
zoo models --update-docs docs/pretrained.md        # rewrite them there, between the markers
zoo models --evaluate char_lstm_shakespeare --corpus ../shared/data/tinyshakespeare/input.txt
zoo models --evaluate imdb_bilstm --imdb ../shared/data/imdb/aclImdb_dev.tar.gz
zoo models --evaluate multi30k_de_en_attn_gru --multi30k ../shared/data/multi30k --split val
zoo models --evaluate shapes_caption_soft --limit 64     # synthetic held-out seeds: no data flag
zoo models --evaluate --ckpt checkpoints/agnews_gru/last.ckpt   # any recipe's checkpoint, on its own data's test split
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from zoo.cli.common import guarded
from zoo.errors import InputError
from zoo.hub.cards import PICTURE, model_rows, models_markdown
from zoo.hub.registry import list_models

BEGIN = "<!-- BEGIN GENERATED: zoo models --markdown -->\n"
END = "<!-- END GENERATED -->"


def pictures_beside(path: Path) -> List[str]:
    """The registered names whose gallery picture exists beside the Markdown file ``path``."""
    return [name for name in list_models() if (path.parent / PICTURE.format(name=name)).is_file()]


def update_docs(path: Path) -> None:
    """Replace the generated part of ``path`` (between :data:`BEGIN` and :data:`END`) with
    :func:`~zoo.hub.cards.models_markdown`, linking the pictures that exist beside it."""
    from datamodules.download import read_text
    from zoo.errors import MissingInputError

    if not path.is_file():
        raise MissingInputError(f"{path} is not a file (expected the Markdown file to update)")
    text = read_text(path, "UTF-8 Markdown")
    if BEGIN not in text or END not in text:
        raise InputError(f"{path}: markers {BEGIN.strip()!r} and {END!r} not found (the generated part goes between them)")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + models_markdown(pictures_beside(path)) + END + tail, encoding="utf-8")


def _size(size: Optional[int]) -> str:
    return f"{size / 2**20:.1f} MiB" if size is not None else "-"


def table(rows: List[Dict[str, Any]]) -> str:
    """The rows of :func:`~zoo.hub.cards.model_rows` as an aligned text table."""
    header = ["name", "task", "metric", "size", "weights"]
    cells = [[r["name"], r["task"], r["metric"] or "-", _size(r["size"]), r["weights"]] for r in rows]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(str(c[i]).ljust(widths[i]) for i in range(len(header))).rstrip() for c in [header, *cells]]
    return "\n".join(lines) + "\n"


def evaluate(name_or_path: str, **data: Any) -> Dict[str, float]:
    """Measure a pretrained model the way its card was measured: its task's scorer
    (:func:`zoo.scoring.score`) with the data options given (``corpus``, ``imdb``, ``multi30k``,
    ``split``, ``limit``, ``max_chars``; ``None`` = not given)."""
    # Imported here: listing the registry needs neither Lightning nor the datamodules.
    from zoo.scoring import score
    from zoo.tasks.base import load_pretrained

    return score(load_pretrained(name_or_path), **data)


def evaluate_checkpoint(path: str, **data: Any) -> Dict[str, float]:
    """Measure a ``zoo fit`` checkpoint: on the test split of the datamodule it was trained with (the
    checkpoint records it; only ``limit`` applies), or, when a data option is given or it recorded
    none, by its task's scorer as :func:`evaluate` does."""
    from zoo.scoring import checkpoint_datamodule, score
    from zoo.tasks.base import load_task

    model = load_task(path)
    named = {k: v for k, v in data.items() if k != "limit" and v is not None}
    datamodule = None if named else checkpoint_datamodule(path)
    if datamodule is not None:
        return score(model, datamodule, limit=data.get("limit"))
    return score(model, **data)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo models", description="The zoo's registered models and their cards.")
    parser.add_argument("pattern", nargs="?", help="only names matching this shell wildcard (e.g. '*imdb*')")
    parser.add_argument("--json", action="store_true", help="one JSON object per model and line")
    parser.add_argument("--markdown", action="store_true", help="print the model table and cards (docs/pretrained.md)")
    parser.add_argument("--update-docs", metavar="MD", type=Path, help="rewrite the generated part of this Markdown file")
    parser.add_argument(
        "--evaluate",
        metavar="NAME_OR_FOLDER",
        nargs="?",
        const="",
        help="score a model with its task's scorer, on data it never saw (zoo.scoring); prints JSON",
    )
    parser.add_argument(
        "--ckpt",
        metavar="PATH",
        help="with --evaluate: score a checkpoint of `zoo fit` (any recipe) on "
        "the test split of the datamodule it was trained with",
    )
    parser.add_argument(
        "--corpus", help="char LM: a text file (e.g. tinyshakespeare/input.txt) or python-stdlib; validation = its last 10%%"
    )
    parser.add_argument(
        "--max_chars",
        type=int,
        default=None,
        help="char LM: the recipe's cut of the corpus (recipes/char_lm.yaml: 1500000); default all of it",
    )
    parser.add_argument("--imdb", metavar="ARCHIVE", help="IMDB classifier: an aclImdb tarball; its test split is scored")
    parser.add_argument("--multi30k", metavar="DIR", help="translator: the folder of {split}.de.gz and {split}.en.gz")
    parser.add_argument("--split", default=None, help="translator: val or test_2016_flickr (default)")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="a slice: char LM windows per stream, IMDB reviews per "
        "label, sentences, images or clips (captioners and frame classifiers need no data flag: "
        "their held-out seeds are generated); with --ckpt, texts per label or test batches",
    )
    parser.add_argument("--max_windows", dest="limit", type=int, help=argparse.SUPPRESS)  # the old names of --limit
    parser.add_argument("--per_label", dest="limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return guarded("zoo models", lambda: run(parser, args))


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    data = {k: getattr(args, k) for k in ("corpus", "imdb", "multi30k", "split", "limit", "max_chars")}
    if args.evaluate is not None:
        if sum(bool(data[k]) for k in ("corpus", "imdb", "multi30k")) > 1:
            parser.error("--evaluate takes at most one of --corpus, --imdb, --multi30k (the data of its task)")
        if bool(args.evaluate) == bool(args.ckpt):
            parser.error("--evaluate takes a registered name or folder, or --ckpt PATH (one of them)")
        result = evaluate_checkpoint(args.ckpt, **data) if args.ckpt else evaluate(args.evaluate, **data)
        print(json.dumps(result, indent=2))
    elif args.ckpt:
        parser.error("--ckpt goes with --evaluate (zoo models --evaluate --ckpt PATH)")
    elif any(v is not None for v in data.values()):
        parser.error("--corpus, --imdb, --multi30k, --split, --limit and --max_chars go with --evaluate NAME")
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
