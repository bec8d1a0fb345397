"""The ``zoo`` command: every subcommand in one table.

``zoo fit|validate|test|predict --config recipes/X.yaml`` is Lightning's own CLI (:mod:`zoo.cli.fit`);
the inference commands share one parser (:mod:`zoo.cli.common`): ``NAME_OR_FOLDER`` or ``--ckpt PATH``,
inputs as arguments or on stdin, and ``--beam_size``, ``--output``, ``--json``, ``--device``.
A command's module is imported only when it runs, so ``zoo fit`` never pays for the captioner's
imports and ``zoo --help`` starts in a blink.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Dict, List, NamedTuple, Optional

from zoo.malloc import keep_freed_memory


class Command(NamedTuple):
    target: str  # "module:function" taking argv (after the command name) and returning an exit status
    summary: str  # the line `zoo --help` shows
    lightning: bool = False  # a LightningCLI subcommand: its function gets the name too


COMMANDS: Dict[str, Command] = {
    "fit": Command("zoo.cli.fit:main", "train a recipe: zoo fit --config recipes/char_lm.yaml [--model.cell gru ...]", True),
    "validate": Command("zoo.cli.fit:main", "validate a recipe's model (--ckpt_path PATH)", True),
    "test": Command("zoo.cli.fit:main", "test a recipe's model (--ckpt_path PATH)", True),
    "predict": Command("zoo.cli.fit:main", "write one JSON line per example of a recipe's predict set", True),
    "sample": Command("zoo.cli.sample:main", "generate text with a character language model"),
    "classify": Command("zoo.cli.classify:main", "label texts with a sequence classifier (IMDB, AG News)"),
    "translate": Command("zoo.cli.translate:main", "translate sentences with a seq2seq model (+ attention alignment PNG)"),
    "caption": Command("zoo.cli.caption:main", "caption images (+ the attention figure of each)"),
    "answer": Command("zoo.cli.answer:main", "answer questions about an image (+ the figure of each attention hop)"),
    "label-frames": Command("zoo.cli.label_frames:main", "label every frame of a video file or frame folder"),
    "visualize": Command("zoo.cli.visualize:main", "colour a text by a language model's hidden units; find interpretable units"),
    "export": Command("zoo.cli.export:main", "turn a checkpoint into a pretrained folder (safetensors)"),
    "extract-frames": Command("zoo.cli.extract_frames:main", "extract the frames of videos into DEST/<video>/000001.jpg"),
    "frame-features": Command("zoo.cli.frame_features:main", "cache a frame classifier's per-frame features for fast training"),
    "models": Command("zoo.cli.models:main", "list the registered models and show their cards"),
    "demo": Command("zoo.demo.app:main", 'serve every shipped model in one local web page (pip install -e ".[demo]")'),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: zoo COMMAND [options]   (zoo COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    lines += [
        "",
        "Inference commands take NAME_OR_FOLDER or --ckpt PATH, inputs as arguments or on stdin,",
        "and --output PATH, --json, --device cpu|cuda|auto (--beam_size where they decode).",
        "ZOO_DEBUG=1 shows the traceback of an error.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    command = COMMANDS.get(name)
    if command is None:
        close = difflib.get_close_matches(name, list(COMMANDS), n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else f" (commands: {', '.join(COMMANDS)})"
        sys.stderr.write(f"zoo: error: unknown command {name!r}{hint}\n")
        return 2
    keep_freed_memory()  # large per-step tensors reuse the heap instead of page-faulting fresh memory (zoo/malloc.py)
    module, _, function = command.target.partition(":")
    run = getattr(importlib.import_module(module), function)
    return run([name, *rest] if command.lightning else rest) or 0
