"""``zoo fit|validate|test|predict --config recipes/X.yaml``: Lightning's own CLI over any
LightningModule and LightningDataModule (plain YAML over ``class_path``/``init_args``, overrides such
as ``--model.cell gru``, ``--print_config``), with four things added:

- W&B never prompts: offline when there are no credentials, and the run says where it went;
- ``trainer.precision: auto`` is chosen by timing a few training steps in each precision
  (:mod:`zoo.precision`) before the Trainer is built;
- after fitting, the best and last checkpoint paths are printed;
- ``zoo predict`` always writes JSON lines: a recipe (or ``--trainer.callbacks``) without a prediction
  writer gets one :class:`zoo.callbacks.PredictionWriter` to ``predictions/<recipe>.jsonl`` (the
  recipe's file name; ``predictions/predictions.jsonl`` without ``--config``), and the path and the
  number of lines are printed on exit. A file, not stdout: Lightning's progress bar writes to stdout;
- a killed run resumes exactly (``--ckpt_path last``): training batches are seeded per step and
  checkpoints written atomically (:mod:`zoo.resume`);
- errors a user can fix read as one line: a misspelt option names the closest valid ones
  (``--model.hiden_size`` -> ``--model.hidden_size``) instead of jsonargparse's page of usage, and a
  user error raised while running (missing data, a bad file, a value a class refuses) ends in ``zoo fit: error: ...``
  and exit status 2, its traceback only with ``ZOO_DEBUG=1``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Optional, Tuple, Union

# Quieter start: these must be set before torch/lightning are imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import lightning as L  # noqa: E402
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO  # noqa: E402
from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT  # noqa: E402
from lightning.pytorch.callbacks import BasePredictionWriter  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402

from zoo.callbacks import PredictionWriter  # noqa: E402
from zoo.cli.common import guarded  # noqa: E402
from zoo.errors import InputError, UserError  # noqa: E402
from zoo.resume import AtomicCheckpointIO, StepSeed  # noqa: E402
from zoo.tracking import configure_wandb, report_wandb_runs  # noqa: E402

SECTIONS = ("model", "data", "trainer")
# Keys jsonargparse accepts under a subclass-mode section besides the class's own arguments.
META_KEYS = {"class_path", "init_args", "dict_kwargs", "help", "__path__"}


class RecipeError(InputError):
    """A recipe's value that the class it configures refuses (ZOO_DEBUG=1 shows where)."""


class Trainer(L.Trainer):
    """Lightning's Trainer whose ``precision`` may also be ``"auto"`` in a config: the zoo command
    replaces it by the fastest measured precision before building the Trainer."""

    def __init__(self, *args: Any, precision: Union[_PRECISION_INPUT, Literal["auto"], None] = None, **kwargs: Any) -> None:
        if precision == "auto":
            raise ValueError(
                "precision 'auto' is resolved by the zoo command (zoo fit); in Python call "
                "zoo.precision.choose_precision(model, datamodule) and pass its choice"
            )
        super().__init__(*args, precision=precision, **kwargs)


class ZooCLI(LightningCLI):
    def __init__(self, args: Optional[List[str]] = None, run: bool = True) -> None:
        super().__init__(
            L.LightningModule,
            L.LightningDataModule,
            trainer_class=Trainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [StepSeed()]},  # with atomic checkpoints: exact resume (zoo.resume)
            parser_kwargs={"prog": "zoo", **({"parser_mode": "omegaconf"} if _has_omegaconf() else {})},
            args=args,
            run=run,
        )

    def parse_arguments(self, parser, args) -> None:
        """Parse; on a parse error, first look for a misspelt option and name the closest valid ones
        (jsonargparse's message for one is fifty lines of usage and a Union type)."""
        parsers = [parser, *getattr(self, "_subcommand_parsers", {}).values()]
        for p in parsers:
            p.exit_on_error = False
        argv = list(sys.argv[1:] if args is None else args)
        self.argv = argv
        try:
            self.config = parser.parse_args(argv)
        except Exception as error:  # jsonargparse's ArgumentError
            if type(error).__name__ != "ArgumentError":
                raise
            hints = misspelt_options(argv)
            if hints:
                command = f"zoo {_subcommand(argv)}"
                sys.stderr.write("".join(f"{command}: error: {line}\n" for line in hints))
                sys.stderr.write(f"(every option: {command} --help; one class's: {command} --model.help CLASS)\n")
                raise SystemExit(2) from None
            for p in parsers:
                p.exit_on_error = True
            parser.error(str(error), getattr(error, "__cause__", None) or error)

    def _parse_ckpt_path(self) -> None:
        """``--ckpt_path FILE``: read it with the zoo's data-only reader before Lightning does
        (:func:`zoo.tasks.resolve.check_resume`): a class it names other than the recipe's model is
        refused in one line, nothing imported; settings it changes are named on stderr. A URL is
        refused (Lightning unpickles remote checkpoints with ``weights_only=False``)."""
        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        if isinstance(path, str) and path.startswith(("http://", "https://")):
            raise InputError(
                f"--ckpt_path {path}: resuming from a URL is refused (Lightning would unpickle it "
                "without torch's allow-list); download the checkpoint and pass the local file"
            )
        if path and Path(path).is_file():
            from zoo.tasks.resolve import check_resume

            model = self.config[sub]["model"]
            settings = model.get("init_args")
            settings = settings.as_dict() if hasattr(settings, "as_dict") else dict(settings or {})
            changed, self._resume_state = check_resume(path, model["class_path"], settings)
            if changed:
                sys.stderr.write(
                    f"zoo {sub}: warning: {path} changes the recipe's model settings "
                    f"{', '.join(changed)} to the checkpoint's values\n"
                )
        super()._parse_ckpt_path()

    def after_instantiate_classes(self) -> None:
        """The ``--ckpt_path`` weights against the model the recipe built (when it is built): a file
        that does not fit is one line naming it, not Lightning's traceback from ``load_state_dict``."""
        state, model = getattr(self, "_resume_state", None), self.model
        if state is not None and getattr(model, "built", True):
            from zoo.hub.errors import CheckpointError
            from zoo.tasks.resolve import state_mismatch

            mismatch = state_mismatch(model.state_dict(), state)
            if mismatch:
                path = self.config[self.config["subcommand"]]["ckpt_path"]
                raise CheckpointError(f"{path}: its weights do not fit the recipe's {type(model).__name__}: {mismatch}")

    def instantiate_classes(self) -> None:
        """Build the recipe's classes; a value their constructors refuse (a ``ValueError`` raised
        while building from the recipe) is the recipe's mistake: a :class:`RecipeError`, one line."""
        try:
            super().instantiate_classes()
        except ValueError as error:
            if isinstance(error, UserError):
                raise
            raise RecipeError(
                f"the recipe's values were refused while building its classes ({type(error).__name__}: "
                f"{' '.join(str(error).split())})"
            ) from error

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        if config["trainer"].get("precision") == "auto":
            from zoo.precision import choose_precision

            device = "cuda" if config["trainer"].get("accelerator") in ("auto", "gpu", "cuda") and _cuda() else "cpu"
            kwargs["precision"], _ = choose_precision(self.model, self.datamodule, device=device)
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not one the config chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if self.subcommand == "predict" and not any(isinstance(c, BasePredictionWriter) for c in trainer.callbacks):
            trainer.callbacks.append(PredictionWriter(default_predictions_path(self.argv)))
        return trainer

    def after_fit(self) -> None:
        report_wandb_runs(self.trainer.loggers)
        for callback in self.trainer.checkpoint_callbacks:
            if callback.best_model_path:
                print(f"best checkpoint: {callback.best_model_path}", flush=True)
            if callback.last_model_path:
                print(f"last checkpoint: {callback.last_model_path}", flush=True)


def default_predictions_path(argv: List[str]) -> str:
    """Where ``zoo predict`` writes when nothing says: ``predictions/<stem of the last --config>.jsonl``
    (``recipes/char_lm.yaml`` -> ``predictions/char_lm.jsonl``, the path the recipes that name a writer
    use), else ``predictions/predictions.jsonl``."""
    configs = list(_config_paths(argv))
    return str(Path("predictions") / f"{Path(configs[-1]).stem if configs else 'predictions'}.jsonl")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _has_omegaconf() -> bool:
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        return False
    return True


def _subcommand(argv: List[str]) -> str:
    return next((a for a in argv if a in ("fit", "validate", "test", "predict")), "fit")


# ---- misspelt options ------------------------------------------------------------------------------
def _given_options(argv: List[str]) -> Iterator[Tuple[str, str, str]]:
    """``(section, prefix, key)`` for every ``--model.*``, ``--data.*``, ``--trainer.*`` option:
    ``--model.init_args.hiden_size`` -> ``("model", "--model.init_args.", "hiden_size")``; a nested
    option keeps only its first part (``--trainer.callbacks.dirpath`` -> ``callbacks``)."""
    for token in argv:
        if not token.startswith("--"):
            continue
        typed = token[2:].split("=", 1)[0].rstrip("+")
        section, _, key = typed.partition(".")
        if section in SECTIONS and key:
            prefix = f"--{section}."
            if key.startswith("init_args."):
                prefix, key = prefix + "init_args.", key[len("init_args.") :]
            yield section, prefix, key.split(".")[0]


def _config_paths(argv: List[str]) -> Iterator[str]:
    """Every ``--config``/``-c`` file named in ``argv``, in order."""
    for i, token in enumerate(argv):
        if token in ("--config", "-c") and i + 1 < len(argv):
            yield argv[i + 1]
        elif token.startswith("--config="):
            yield token.split("=", 1)[1]


def check_config_encoding(argv: List[str]) -> None:
    """A recipe that is not UTF-8 is a DataFormatError naming it (jsonargparse's own error names no file)."""
    from datamodules.download import read_text

    for path in _config_paths(argv):
        if Path(path).is_file():
            read_text(path, "a UTF-8 YAML recipe")


def _config_sections(argv: List[str]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``(file, config)`` of every ``--config``/``-c`` YAML file in ``argv``, in order."""
    import yaml

    for path in _config_paths(argv):
        try:
            config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # jsonargparse reports an unreadable config itself
        if isinstance(config, dict):
            yield path, config


def _chosen_class(section: str, argv: List[str]) -> Optional[type]:
    """The class a section names: the last ``class_path`` in the config files or the command line."""
    if section == "trainer":
        return L.Trainer
    name = None
    for _, config in _config_sections(argv):
        value = config.get(section)
        if isinstance(value, dict) and isinstance(value.get("class_path"), str):
            name = value["class_path"]
        elif isinstance(value, str):
            name = value
    for i, token in enumerate(argv):  # the command line wins over the files
        if token in (f"--{section}", f"--{section}.class_path") and i + 1 < len(argv):
            name = argv[i + 1]
        elif token.startswith((f"--{section}=", f"--{section}.class_path=")):
            name = token.split("=", 1)[1]
    return _resolve(name, L.LightningModule if section == "model" else L.LightningDataModule) if name else None


def _class_on_command_line(section: str, argv: List[str]) -> bool:
    return any(
        t in (f"--{section}", f"--{section}.class_path") or t.startswith((f"--{section}=", f"--{section}.class_path="))
        for t in argv
    )


def _resolve(name: str, base: type) -> Optional[type]:
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr, None)
        except ImportError:
            return None
    pending, seen = [base], set()
    while pending:  # the subclasses imported so far, by short name (as jsonargparse resolves them)
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                pending.append(sub)
    return None


def init_arguments(cls: type) -> List[str]:
    """The arguments ``cls(...)`` accepts by name, following ``**kwargs`` up the class hierarchy."""
    names: List[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        names += [
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in names
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _hint(prefix: str, key: str, cls: type, where: str = "") -> Optional[str]:
    """``prefix + key`` is not an option of ``cls``: say so and name the closest valid ones."""
    valid = init_arguments(cls)
    if key in valid or key in META_KEYS:
        return None
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    if close:
        advice = "did you mean " + " or ".join(prefix + name for name in close) + "?"
    else:
        advice = "its options: " + ", ".join(sorted(valid))
    shown = prefix + key + (f" (in {where})" if where else "")
    return f"{shown} is not an option of {cls.__name__}; {advice}"


def misspelt_options(argv: List[str]) -> List[str]:
    """One line per ``--model.*``/``--data.*``/``--trainer.*`` option (on the command line, or a key in
    a ``--config`` file) that the chosen class does not take, naming the closest valid ones."""
    hints: List[str] = []
    classes = {section: _chosen_class(section, argv) for section in SECTIONS}
    for section, prefix, key in _given_options(argv):
        cls = classes[section]
        hint = _hint(prefix, key, cls) if cls is not None else None
        if hint:
            hints.append(hint)
    for path, config in _config_sections(argv):
        for section in SECTIONS:
            value, cls = config.get(section), classes[section]
            if not isinstance(value, dict) or cls is None or _class_on_command_line(section, argv):
                continue  # a class chosen on the command line drops the file's init_args
            keys = value.get("init_args") if section != "trainer" else value
            for key in keys if isinstance(keys, dict) else {}:
                prefix = f"{section}.init_args." if section != "trainer" else f"{section}."
                hint = _hint(prefix, key, cls, where=path)
                if hint:
                    hints.append(hint)
    return hints


# ---- the command -----------------------------------------------------------------------------------
def main(argv: List[str]) -> int:
    """``argv`` starts with the subcommand (fit, validate, test or predict)."""
    configure_wandb()

    def run() -> int:
        check_config_encoding(argv)
        ZooCLI(args=argv)
        return 0

    return guarded(f"zoo {_subcommand(argv)}", run)
