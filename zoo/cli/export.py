"""``zoo export``: turn a Lightning checkpoint (or any pretrained model) into a pretrained folder.

    zoo export --ckpt checkpoints/imdb_gru/best.ckpt --out-dir zoo/pretrained/imdb_bigru --fp16 --int8 embeddings
    zoo export char_lstm_shakespeare --out-dir /tmp/lm       # re-export a name, folder, URL or Hub repo
    zoo export char_lstm_shakespeare --onnx /tmp/lm_onnx --pt2 /tmp/lm_pt2   # inference graphs (zoo.export)

The checkpoint is read with ``weights_only=True`` and the class it names goes through
:func:`zoo.tasks.resolve.resolve_task`: only a zoo task (or the ``--task`` class you name) is built.
"""

from __future__ import annotations

import argparse
import json
from typing import List

import torch

from zoo.cli.common import deprecated_alias, guarded
from zoo.hub.format import CONFIG_NAME, WEIGHTS_NAME, write_folder
from zoo.tasks.base import TaskModule, load_pretrained, load_task
from zoo.tasks.resolve import resolve_task


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zoo export",
        description="Write a pretrained folder "
        f"({CONFIG_NAME} + {WEIGHTS_NAME} + tokenizer files) that `zoo.load_pretrained` and every command read.",
    )
    parser.add_argument("model", nargs="?", metavar="NAME_OR_FOLDER", help="a pretrained name, folder, archive, URL or Hub repo")
    parser.add_argument("--ckpt", help="a Lightning checkpoint written by `zoo fit` (read with weights_only=True)")
    parser.add_argument("--out-dir", dest="out", metavar="DIR", help="the pretrained folder to write (created if needed)")
    for old in ("--output", "--out"):  # the old names of --out-dir, for one release
        deprecated_alias(parser, old, "--out-dir", "out")
    parser.add_argument(
        "--onnx",
        metavar="DIR",
        help="write the task's inference graphs as ONNX files here, with graphs.json "
        "and the vocabulary/tokenizer files (needs the export extra: pip install 'zoo[export]')",
    )
    parser.add_argument("--pt2", metavar="DIR", help="write the same graphs as torch.export programs (.pt2, torch.export.load)")
    parser.add_argument("--fp16", action="store_true", help="store float16 weights (half the size; loaded back as float32)")
    parser.add_argument(
        "--int8",
        action="append",
        metavar="KEY",
        default=[],
        help="store this 2-D weight (state-dict key, 'embeddings' for every embedding table, 'linears' for every "
        "linear layer's weight) as int8 "
        "with one scale per row; repeatable",
    )
    parser.add_argument(
        "--task",
        metavar="MODULE.CLASS",
        help="the task class to rebuild with (a checkpoint that does not record one, or your own task "
        "class: naming its module here is what allows it to be imported)",
    )
    args = parser.parse_args(argv)
    return guarded("zoo export", lambda: export(parser, args))


def export(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not (args.out or args.onnx or args.pt2):
        parser.error("give --out-dir DIR (a pretrained folder), --onnx DIR or --pt2 DIR (the inference graphs)")
    if bool(args.ckpt) == bool(args.model):
        parser.error("give either --ckpt PATH or a pretrained NAME_OR_FOLDER (exactly one)")
    # The user named this class on the command line: its module may be imported.
    allow = [args.task.rpartition(".")[0]] if args.task else []
    expected = resolve_task(args.task, TaskModule, "--task", allow) if args.task else None
    if args.ckpt:
        model = load_task(args.ckpt, expected, allow_modules=allow)
    else:
        model = load_pretrained(args.model, expected, allow_modules=allow)
    for fmt in ("onnx", "pt2"):
        if getattr(args, fmt):
            from zoo.export import export as export_graphs

            written = export_graphs(model.cpu(), getattr(args, fmt), formats=(fmt,))
            print(f"wrote {getattr(args, fmt)}: " + ", ".join(p.name for p in written[fmt]) + " + graphs.json")
    if not args.out:
        return 0
    folder = write_folder(model, args.out, dtype=torch.float16 if args.fp16 else None, quantize=args.int8)
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    int8 = f" (int8: {', '.join(config['quantized'])})" if config.get("quantized") else ""
    print(f"wrote {folder}: {config['task']}, {config['params']:,} parameters, {config['dtype']}{int8}")
    for name, info in config["files"].items():
        print(f"  {name:<20} {info['size']:>10,} bytes  sha256 {info['sha256']}")
    return 0
