"""The ``zoo`` command.

``zoo fit|validate|test|predict --config recipes/X.yaml`` is Lightning's own CLI (plain YAML over
``class_path``/``init_args``, overrides such as ``--model.cell gru``, ``--print_config``); any
LightningModule and LightningDataModule can be named in a recipe. A few inference commands sit
beside it (``zoo sample``, ...): they load a checkpoint and work on raw input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Dict, List, Optional

# Quieter start: these must be set before torch/lightning are imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import lightning as L  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402

from zoo.tracking import configure_wandb, report_wandb_runs  # noqa: E402


class ZooCLI(LightningCLI):
    def __init__(self, args: Optional[List[str]] = None, run: bool = True) -> None:
        super().__init__(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "omegaconf"} if _has_omegaconf() else {},
            args=args,
            run=run,
        )

    def after_fit(self) -> None:
        report_wandb_runs(self.trainer.loggers)
        for callback in self.trainer.checkpoint_callbacks:
            if callback.best_model_path:
                print(f"best checkpoint: {callback.best_model_path}", flush=True)
            if callback.last_model_path:
                print(f"last checkpoint: {callback.last_model_path}", flush=True)


def _has_omegaconf() -> bool:
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        return False
    return True


# ---- inference commands ------------------------------------------------------------------------
def sample_command(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo sample", description="Generate text from a character language model.")
    parser.add_argument("model", nargs="?", help="a pretrained name or folder (see `zoo.list_models()`)")
    parser.add_argument("--ckpt", help="a Lightning checkpoint written by `zoo fit`")
    parser.add_argument("--prime", default="\n", help="text to start from (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; higher = more random (default 0.8)")
    parser.add_argument("--top_k", type=int, default=None, help="sample only among the k most likely characters")
    parser.add_argument("--seed", type=int, default=None, help="random seed for a reproducible sample")
    args = parser.parse_args(argv)
    from zoo.tasks.language_model import CharLanguageModel

    model = load_model_arg(parser, args, CharLanguageModel)
    print(model.generate(args.prime, args.length, args.temperature, args.top_k, args.seed))
    return 0


def inference_parser(prog: str, description: str, inputs: Optional[str] = None, inputs_help: str = "") -> argparse.ArgumentParser:
    """The arguments every inference command shares: a pretrained ``model`` name/folder or ``--ckpt``,
    and (with ``inputs``) positional inputs; see :func:`parse_inference_args`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("model", nargs="?", help="a pretrained name or folder (see `zoo.list_models()`)")
    if inputs:
        parser.add_argument(inputs, nargs="*", help=inputs_help)
    parser.add_argument("--ckpt", help="a Lightning checkpoint written by `zoo fit` (instead of a model name)")
    return parser


def parse_inference_args(parser: argparse.ArgumentParser, argv: List[str], inputs: str) -> argparse.Namespace:
    """Parse; with ``--ckpt`` every positional argument is an input (the first is not a model name)."""
    args = parser.parse_args(argv)
    if args.ckpt and args.model is not None:
        setattr(args, inputs, [args.model, *getattr(args, inputs)])
        args.model = None
    return args


def load_model_arg(parser: argparse.ArgumentParser, args: argparse.Namespace, expected: type):
    """Load the model an inference command names: ``--ckpt PATH`` or a pretrained name/folder."""
    if bool(args.ckpt) == bool(args.model):
        parser.error("give either --ckpt PATH or a pretrained model name/folder (exactly one)")
    try:
        if args.ckpt:
            from zoo.tasks.base import load_task

            return load_task(args.ckpt, expected)
        from zoo import hub

        return hub.load_pretrained(args.model, expected=expected)
    except (FileNotFoundError, ValueError, KeyError) as e:
        parser.exit(2, f"zoo {parser.prog.split()[-1]}: error: {e}\n")


# Inference commands: name -> "module:function" taking argv and returning an exit code. Imported
# only when called, so `zoo fit` never pays for the captioner's imports.
EXTRA_COMMANDS: Dict[str, str] = {
    "sample": "zoo.cli:sample_command",
    "classify": "zoo.tasks.classifier:classify_command",
    "caption": "zoo.tasks.captioner:caption_command",
    "translate": "zoo.tasks.seq2seq:translate_command",
    "visualize": "zoo.viz:visualize_command",
    "export": "zoo.hub:export_command",
    "extract-frames": "datamodules.video_frames:extract_frames_command",
}


def _command(name: str) -> Callable[[List[str]], int]:
    module, _, function = EXTRA_COMMANDS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Optional[List[str]] = None) -> int:
    given = argv
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXTRA_COMMANDS:
        return _command(argv[0])(argv[1:]) or 0
    if not argv or argv[0] in ("-h", "--help"):
        extra = ", ".join(sorted(EXTRA_COMMANDS))
        print(f"inference commands beside Lightning's fit/validate/test/predict: {extra} (zoo COMMAND --help)\n")
    configure_wandb()
    ZooCLI(args=given)  # None: Lightning reads sys.argv itself
    return 0


if __name__ == "__main__":
    sys.exit(main())
