"""What every inference command shares: one parser, one way to load the model, read the inputs, write
the outputs, and turn a known user error into one line and exit status 2.

    zoo <command> NAME_OR_FOLDER [INPUT ...] [--beam_size N] [--output PATH] [--json] [--device D]
    zoo <command> --ckpt PATH    [INPUT ...] ...

``NAME_OR_FOLDER`` is a registered model name (``zoo models``) or a pretrained folder; with ``--ckpt``
there is no name, so every positional argument is an input. No input: one input per line of stdin
(``-`` as an input also reads stdin).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, List, NoReturn, Optional, Sequence, Type

from zoo.callbacks import jsonable  # the one conversion: `zoo predict` and every command


def debug() -> bool:
    """``ZOO_DEBUG=1``: let errors end in their traceback instead of one line."""
    return os.environ.get("ZOO_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def is_user_error(error: BaseException) -> bool:
    """A known user error: missing data, a bad file, a bad value. These end in their
    message and exit status 2; anything else is a bug and keeps its traceback (docs/architecture.md)."""
    known: tuple = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, ValueError)
    if isinstance(error, known):
        return True
    if isinstance(error, KeyError):  # a named one (UnknownModelError); a bare KeyError('x') is a bug
        return type(error) is not KeyError
    from datamodules.download import ChecksumError, DownloadError  # cheap: no torch

    return isinstance(error, (ChecksumError, DownloadError))


def error_message(error: BaseException) -> str:
    """The message of ``error`` as written (``str(KeyError("x"))`` would add quotes)."""
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        return error.args[0]
    return str(error) or type(error).__name__


def fail(prog: str, message: str) -> NoReturn:
    """``<prog>: error: <message>`` on stderr, exit status 2."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command; a known user error becomes ``<prog>: error: <message>`` and status 2 (its
    traceback with ``ZOO_DEBUG=1``)."""
    try:
        return body() or 0
    except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs just below
        if debug() or not is_user_error(error):
            raise
        sys.stdout.flush()
        sys.stderr.write(f"{prog}: error: {error_message(error)}\n")
        return 2


# ---- the parser --------------------------------------------------------------------------------
def inference_parser(
    command: str,
    description: str,
    inputs: Optional[str] = "INPUT",
    inputs_help: str = "",
    beam: bool = False,
    output_help: str = "write the results (one line per input) to this file instead of stdout",
) -> argparse.ArgumentParser:
    """The parser of ``zoo <command>``: the model (``NAME_OR_FOLDER`` or ``--ckpt``), the inputs, and
    the flags every inference command shares. ``inputs=None``: the command takes no positional inputs
    (it reads its input from an option); ``beam``: it decodes, so it takes ``--beam_size``."""
    parser = argparse.ArgumentParser(prog=f"zoo {command}", description=description)
    parser.add_argument("model", nargs="?", metavar="NAME_OR_FOLDER",
                        help="a registered model name (see `zoo models`) or a pretrained folder")
    if inputs:
        parser.add_argument("inputs", nargs="*", metavar=inputs,
                            help=inputs_help or "the inputs; none (or '-') = one per line of stdin")
    parser.add_argument("--ckpt", metavar="PATH",
                        help="a Lightning checkpoint written by `zoo fit` instead of NAME_OR_FOLDER; "
                        "every positional argument is then an input")
    if beam:
        parser.add_argument("--beam_size", type=int, default=None, help="beam width (1 = greedy; default: the model's)")
    parser.add_argument("--output", metavar="PATH", help=output_help)
    parser.add_argument("--json", action="store_true", help="one JSON object per input instead of text")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                        help="where the model runs (default cpu; auto = cuda when available)")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse and check what argparse cannot: exactly one of NAME_OR_FOLDER and ``--ckpt``; with
    ``--ckpt`` the first positional is an input, not a model name. Options may come between the
    positionals (``zoo answer NAME --draw-example x.png "a question?"``): intermixed parsing."""
    args = parser.parse_intermixed_args(list(argv))
    has_inputs = hasattr(args, "inputs")
    if args.ckpt and args.model is not None:
        if not has_inputs:
            parser.error(f"give --ckpt PATH or NAME_OR_FOLDER, not both (got --ckpt {args.ckpt} and {args.model!r})")
        args.inputs = [args.model, *args.inputs]
        args.model = None
    if not args.ckpt and args.model is None:
        parser.error("give a model: NAME_OR_FOLDER (a registered name, see `zoo models`, or a pretrained folder) or --ckpt PATH")
    if getattr(args, "beam_size", None) is not None and args.beam_size < 1:
        parser.error(f"--beam_size must be >= 1, got {args.beam_size}")
    return args


def add_draw_example(parser: argparse.ArgumentParser, metavar: str, what: str) -> None:
    """``--draw-example PATH``: the command first writes an example input (``what``) of the data its
    demo model was trained for, then runs on it; alone, without a model, it only draws."""
    parser.add_argument("--draw-example", metavar=metavar,
                        help=f"first write {what} here (no input at hand? use this one); alone, without a model, only draws it")


def draw_only(parser: argparse.ArgumentParser, argv: Sequence[str], prog: str, draw: Callable[[str], Any]) -> Optional[int]:
    """With ``--draw-example`` and no model: ``draw(path)`` and the exit status; otherwise ``None`` (go on)."""
    given = parser.parse_intermixed_args(list(argv))
    if not (given.draw_example and given.model is None and not given.ckpt):
        return None

    def body() -> int:
        draw(given.draw_example)
        return 0

    return guarded(prog, body)


# ---- the model ---------------------------------------------------------------------------------
def device_of(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    return name


def load_model(args: argparse.Namespace, task: Type[Any]):
    """The model the command names, in eval mode on ``--device``: ``--ckpt`` through
    :func:`zoo.tasks.base.load_task`, otherwise ``task.from_pretrained(NAME_OR_FOLDER)``."""
    device = device_of(args.device)
    if args.ckpt:
        from zoo.tasks.base import load_task

        model = load_task(args.ckpt, expected=task)
    else:
        model = task.from_pretrained(args.model)
    return model.to(device).eval()


# ---- inputs and outputs ------------------------------------------------------------------------
def read_stdin_lines() -> List[str]:
    if sys.stdin is None:
        return []
    if sys.stdin.isatty():
        sys.stderr.write("reading inputs from stdin, one per line (end with Ctrl-D)\n")
    try:
        return [line.rstrip("\r\n") for line in sys.stdin]
    except UnicodeDecodeError as e:  # say where: the codec's own message names no input
        raise ValueError(f"stdin: invalid {e.encoding} input (byte {e.start} of a chunk: {e.reason}); expected text, one input per line") from None


def read_inputs(args: argparse.Namespace) -> List[str]:
    """The positional inputs; none, or ``-``, reads one input per line of stdin (blank lines skipped)."""
    given = list(getattr(args, "inputs", []) or [])
    if given and "-" not in given:
        return given
    inputs: List[str] = []
    for item in given or ["-"]:
        inputs.extend([line for line in read_stdin_lines() if line.strip()] if item == "-" else [item])
    return inputs


def json_line(record: Any, drop: Iterable[str] = (), digits: Optional[int] = None) -> str:
    return json.dumps(jsonable(record, drop, digits), ensure_ascii=False)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (a crash never leaves half a file); creates the folder."""
    from datamodules.download import write_atomic

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))
    return path


def emit(lines: Sequence[str], output: Optional[str] = None) -> None:
    """The command's result lines: to the file ``output`` (atomically) or stdout."""
    if output:
        path = write_text(output, "".join(line + "\n" for line in lines))
        print(f"wrote {len(lines)} line(s) to {path}", file=sys.stderr)
    else:
        for line in lines:
            print(line, flush=True)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    from datamodules.download import write_atomic

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=fig.dpi)
    finally:
        plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return path
