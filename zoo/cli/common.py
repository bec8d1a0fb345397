"""What every inference command shares: one parser, one way to load the model, the exit statuses,
and a user error turned into one line and exit status 2 (the inputs and the records they become:
:mod:`zoo.cli.batch`).

    zoo <command> NAME_OR_FOLDER [INPUT ...] [--beam_size N] [--output FILE|-] [--json] [--strict]
                  [--skip-blank] [--encoding E] [--device D]
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
from typing import Any, Callable, Iterable, NoReturn, Optional, Sequence, Type

from zoo.callbacks import jsonable  # the one conversion: `zoo predict` and every command


def debug() -> bool:
    """``ZOO_DEBUG=1``: let errors end in their traceback instead of one line."""
    return os.environ.get("ZOO_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def is_user_error(error: BaseException) -> bool:
    """The zoo's own user error (:class:`zoo.errors.UserError`: a bad file, a missing file, a bad
    value). These end in their message and exit status 2; anything else is a bug and keeps its
    traceback (docs/api.md, "Errors")."""
    from zoo.errors import UserError

    return isinstance(error, UserError)


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


#: The exit statuses of every inference command (docs/api.md): all inputs answered; a user error (the
#: command could not run, or ``--strict`` stopped at a bad input); some inputs failed (each has its error
#: record, the others their results); interrupted (Ctrl-C). Status 1 is a bug, with its traceback.
OK, USER_ERROR, SOME_FAILED, INTERRUPTED = 0, 2, 3, 130


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command; a user error becomes ``<prog>: error: <message>`` and status 2 (its traceback
    with ``ZOO_DEBUG=1``); Ctrl-C ends in ``<prog>: interrupted`` and status 130."""
    try:
        return body() or 0
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.write(f"{prog}: interrupted\n")
        return INTERRUPTED
    except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs just below
        if debug() or not is_user_error(error):
            raise
        sys.stdout.flush()
        sys.stderr.write(f"{prog}: error: {error_message(error)}\n")
        return USER_ERROR


def warn_deprecated(prog: str, old: str, new: str, note: str = "") -> None:
    """``<prog>: warning: OLD is deprecated, use NEW`` on stderr: an old spelling that still works for
    one release."""
    sys.stderr.write(f"{prog}: warning: {old} is deprecated and will be removed in the next release; use {new}{note}\n")


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str) -> None:
    """Accept ``old`` (hidden from ``--help``) as ``new``, with a deprecation warning on stderr."""
    prog = parser.prog

    class Alias(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            warn_deprecated(prog, option_string or old, new)
            setattr(namespace, dest, values)

    parser.add_argument(old, dest=dest, action=Alias, help=argparse.SUPPRESS)


# ---- the parser --------------------------------------------------------------------------------
#: What ``--output`` means in every command that has it (``zoo COMMAND --help``; the same words everywhere).
OUTPUT_HELP = (
    "where the results go, one record per input: a file (written atomically: complete or not at all; "
    "an interrupted run leaves the records finished so far in FILE.partial), or - for stdout (the default)"
)


def inference_parser(
    command: str,
    description: str,
    inputs: Optional[str] = "INPUT",
    inputs_help: str = "",
    beam: bool = False,
    output: bool = True,
    images: bool = False,
) -> argparse.ArgumentParser:
    """The parser of ``zoo <command>``: the model (``NAME_OR_FOLDER`` or ``--ckpt``), the inputs, and
    the flags every inference command shares. ``inputs=None``: the command takes no positional inputs
    (it reads its input from an option); ``beam``: it decodes, so it takes ``--beam_size``; ``output``:
    it writes records, so it takes ``--output`` and the input contract's flags (``--strict``,
    ``--skip-blank``, ``--encoding``); ``images``: it reads images, so it takes ``--max-pixels``."""
    parser = argparse.ArgumentParser(prog=f"zoo {command}", description=description)
    parser.add_argument(
        "model", nargs="?", metavar="NAME_OR_FOLDER", help="a registered model name (see `zoo models`) or a pretrained folder"
    )
    if inputs:
        parser.add_argument(
            "inputs", nargs="*", metavar=inputs, help=inputs_help or "the inputs; none (or '-') = one per line of stdin"
        )
    parser.add_argument(
        "--ckpt",
        metavar="PATH",
        help="a Lightning checkpoint written by `zoo fit` instead of NAME_OR_FOLDER; every positional argument is then an input",
    )
    if beam:
        parser.add_argument("--beam_size", type=int, default=None, help="beam width (1 = greedy; default: the model's)")
    if output:
        parser.add_argument("--output", metavar="FILE", help=OUTPUT_HELP)
        parser.add_argument(
            "--strict",
            action="store_true",
            help=f"stop at the first bad input (exit status {USER_ERROR}) instead of writing its error record "
            f"and going on (exit status {SOME_FAILED} when some inputs failed)",
        )
        parser.add_argument(
            "--skip-blank",
            action="store_true",
            help="skip blank lines of stdin or of an input file (default: each is an error record)",
        )
        parser.add_argument(
            "--encoding",
            default="utf-8",
            help="the encoding of stdin and of input files (default utf-8; a line that does not decode is an error record)",
        )
    if images:
        from datamodules.images import MAX_PIXELS

        parser.add_argument(
            "--max-pixels",
            type=int,
            default=None,
            metavar="N",
            help=f"read images of up to N pixels (default {MAX_PIXELS:,}: a larger one, such as a "
            "decompression bomb, is refused from its header before it is decoded)",
        )
    parser.add_argument("--json", action="store_true", help="one JSON object per input instead of text")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda", "auto"),
        help="where the model runs (default cpu; auto = cuda when available)",
    )
    return parser


def figure_from_output(prog: str, args: argparse.Namespace) -> None:
    """``--output`` named the figures of ``zoo caption`` and ``zoo answer`` before it named the results
    file: for one release an ``--output`` that can only be a figure (a ``.png``, a path ending in ``/``,
    an existing folder) is still taken as ``--figure``, with a deprecation warning."""
    output = args.output
    if (
        output
        and not args.figure
        and (output.lower().endswith(".png") or output.endswith(("/", os.sep)) or Path(output).is_dir())
    ):
        warn_deprecated(prog, f"--output {output} for the figure", f"--figure {output}", " (--output now names the results file)")
        args.figure, args.output = output, None


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
    if getattr(args, "max_pixels", None) is not None:
        if args.max_pixels < 1:
            parser.error(f"--max-pixels must be >= 1, got {args.max_pixels}")
        from datamodules.images import set_max_pixels

        set_max_pixels(args.max_pixels)
    if getattr(args, "encoding", None) is not None:
        import codecs

        try:
            codecs.lookup(args.encoding)
        except LookupError:
            parser.error(f"--encoding {args.encoding}: not an encoding Python knows (e.g. utf-8, latin-1, cp1252)")
    return args


def add_draw_example(parser: argparse.ArgumentParser, metavar: str, what: str) -> None:
    """``--draw-example PATH``: the command first writes an example input (``what``) of the data its
    demo model was trained for, then runs on it; alone, without a model, it only draws."""
    parser.add_argument(
        "--draw-example",
        metavar=metavar,
        help=f"first write {what} here (no input at hand? use this one); alone, without a model, only draws it",
    )


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
        from zoo.errors import InputError

        raise InputError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
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


# ---- outputs (the inputs and records: zoo/cli/batch.py) ------------------------------------------
def json_line(record: Any, drop: Iterable[str] = (), digits: Optional[int] = None) -> str:
    return json.dumps(jsonable(record, drop, digits), ensure_ascii=False)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (a crash never leaves half a file); creates the folder."""
    from datamodules.download import write_atomic

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))
    return path


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
