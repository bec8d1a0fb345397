"""The one place where a name read from a file becomes a class.

Lightning checkpoints (their ``zoo_task`` entry), pretrained ``config.json`` files (``"task"``),
configs fetched from a URL or the Hub, and ``--task`` on the command line all name a task class by
its dotted path. A file is data, and data must not choose what code runs: :func:`resolve_task`
imports only modules under ``zoo.tasks.`` or modules the *user* named (on the command line or in
code, passed as ``allow_modules``), and hands back only a class that subclasses the task base.
Everything else is refused before anything is imported, let alone called.

This module does not import :mod:`zoo.tasks.base` (the base passes itself as ``base``), so the
loading code in base.py can use it without an import cycle.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from zoo.errors import MissingInputError, NotAFileError, summary
from zoo.hub.errors import CheckpointError, TaskNameError
from zoo.hub.schema import SchemaError, check_args, check_depth, network_choices

__all__ = [
    "TASK_KEY",
    "TASK_PACKAGE",
    "resolve_task",
    "load_checkpoint",
    "read_checkpoint",
    "check_resume",
    "state_mismatch",
    "class_path",
]

TASK_KEY = "zoo_task"  # the key under which a zoo checkpoint records its task class
TASK_PACKAGE = "zoo.tasks"  # the zoo's own task modules: the only ones a file may name


def class_path(cls: type) -> str:
    """``"package.module.Class"``: how files name a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _split(name: str, allow_modules: Sequence[str], package: str = TASK_PACKAGE) -> Optional[Tuple[str, str]]:
    """(module, attribute path) when ``name`` lies in an allowed module, else None."""
    for module in sorted(allow_modules, key=len, reverse=True):  # the longest (most specific) first
        if name.startswith(module + "."):
            return module, name[len(module) + 1 :]
    if name.startswith(package + "."):
        module, _, attr = name.rpartition(".")
        return module, attr
    return None


def resolve_task(name: str, base: type, where: str, allow_modules: Sequence[str] = (), package: str = TASK_PACKAGE) -> type:
    """The task class that ``name`` (a dotted path read from ``where``) names: a subclass of ``base``
    defined in a module under ``zoo.tasks.`` or in one of ``allow_modules`` (modules the user named
    explicitly); ``package`` names another trusted package (``datamodules``: a checkpoint's datamodule).
    Raises :class:`~zoo.hub.errors.TaskNameError`, naming ``where`` and what was
    expected, for anything else: the module is checked before it is imported, the class after."""
    expected = f"a subclass of {class_path(base)} from a module under {package}."
    if package == TASK_PACKAGE:
        expected = f"a zoo task class: {expected} (e.g. zoo.tasks.classifier.SequenceClassifier)"
    if allow_modules:
        expected += f" or from {', '.join(allow_modules)}"
    if not isinstance(name, str) or not name or not all(part.isidentifier() for part in name.split(".")):
        raise TaskNameError(f"{where}: task {name!r} is not a dotted path 'module.Class'; expected {expected}")
    found = _split(name, allow_modules, package)
    if found is None or not found[1]:
        raise TaskNameError(
            f"{where}: refusing task {name!r}: it is not under {package}. and its module was not named by you, "
            f"so it is not imported; expected {expected}. To load your own task class, name its module "
            "explicitly (--task module.Class on the command line, or expected=YourClass in code)"
        )
    module_name, attr = found
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):  # a parent package is missing, or not a package
        spec = None
    if spec is None:
        raise TaskNameError(f"{where}: task {name!r}: module {module_name!r} is not installed; expected {expected}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise TaskNameError(f"{where}: task {name!r}: module {module_name!r} cannot be imported ({e})") from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if obj is None:
        raise TaskNameError(f"{where}: task {name!r}: module {module_name!r} has no {attr!r}; expected {expected}")
    if not (isinstance(obj, type) and issubclass(obj, base) and obj is not base):
        what = f"the class {class_path(obj)}" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise TaskNameError(f"{where}: task {name!r} is {what}, not a task class; expected {expected}")
    return obj


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """The dict of a Lightning checkpoint, read data-only (``torch.load(weights_only=True)``: tensors
    and plain data, never arbitrary objects, and no module is imported), with a ``state_dict`` of
    tensors and a ``hyper_parameters`` dict checked; any failure is one :class:`CheckpointError` line."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise NotAFileError(
            f"checkpoint {path} is a folder; expected a .ckpt file written by `zoo fit` "
            "(for a pretrained folder, pass it as NAME_OR_FOLDER instead of --ckpt)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError (objects outside the allow-list), RuntimeError (not a zip), EOFError, ...
        raise CheckpointError(  # torch's paragraph of advice summarised to its cause, in whole sentences
            f"{path}: not a readable checkpoint of tensors and plain data ({summary(e)}); "
            "expected a .ckpt file written by `zoo fit`"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got a {type(checkpoint).__name__}")
    task = checkpoint.get(TASK_KEY)
    if task is not None and not isinstance(task, str):
        raise CheckpointError(f"{path}: {TASK_KEY!r} must be a dotted class path, got a {type(task).__name__}")
    hparams = checkpoint.get("hyper_parameters", {})
    if not isinstance(hparams, dict) or not all(isinstance(k, str) for k in hparams):
        what = type(hparams).__name__ if not isinstance(hparams, dict) else "dict with a key that is not a string"
        raise CheckpointError(f"{path}: 'hyper_parameters' must be a dict of named values, got a {what}")
    check_depth(hparams, f"{path}: hyper_parameters")
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: no 'state_dict' of tensors (is it a checkpoint written by `zoo fit`?)")
    return checkpoint


def read_checkpoint(path: Union[str, Path]) -> Tuple[Optional[str], Dict[str, Any], Dict[str, torch.Tensor]]:
    """``(task name or None, hyper-parameters, state dict)`` of a Lightning checkpoint, read with
    :func:`load_checkpoint`. The private keys LightningCLI adds to the hyper-parameters
    (``_class_path``, ...) are dropped."""
    checkpoint = load_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {})
    return checkpoint.get(TASK_KEY), {k: v for k, v in hparams.items() if not k.startswith("_")}, checkpoint["state_dict"]


def _class_names(value: Any, where: str) -> List[Tuple[str, Any]]:
    """``(where, name)`` of every ``class_path`` key at any depth of ``value`` (what jsonargparse
    would import and instantiate)."""
    found: List[Tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}"
            if key in ("class_path", "_class_path"):
                found.append((inner, item))
            else:
                found += _class_names(item, inner)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += _class_names(item, f"{where}[{i}]")
    return found


def _same(a: Any, b: Any) -> bool:
    plain = lambda v: list(v) if isinstance(v, tuple) else v
    return plain(a) == plain(b)


def check_resume(
    path: Union[str, Path], model_class: str, settings: Mapping[str, Any]
) -> Tuple[List[str], Dict[str, torch.Tensor]]:
    """Check a checkpoint given to ``--ckpt_path`` against the recipe before Lightning reads it.

    The file is read data-only (:func:`load_checkpoint`); every class it names (its ``zoo_task``,
    ``hyper_parameters._class_path`` and any ``class_path`` inside the hyper-parameters) must be the
    recipe's model class ``model_class``, else :class:`TaskNameError` naming both, before anything is
    imported. Returns the keys whose value in the checkpoint differs from the recipe's ``settings``
    (those the recipe sets, not ``None``: the checkpoint's values are the ones the resumed model
    takes, and the caller says so) and the checkpoint's state dict (to check against the model built,
    :func:`state_mismatch`)."""
    checkpoint = load_checkpoint(path)
    if "pytorch-lightning_version" not in checkpoint:
        raise CheckpointError(
            f"{path}: not a Lightning checkpoint (no 'pytorch-lightning_version'); expected a .ckpt file written by `zoo fit`"
        )
    hparams = checkpoint.get("hyper_parameters", {})
    named = ([(TASK_KEY, checkpoint[TASK_KEY])] if checkpoint.get(TASK_KEY) is not None else []) + _class_names(
        hparams, "hyper_parameters"
    )
    for where, name in named:
        if name != model_class:
            raise TaskNameError(
                f"{path}: refusing --ckpt_path: its {where} names {name!r}, but the recipe's model is {model_class!r}; "
                "a checkpoint cannot choose the model class (nothing it names was imported). Resume from a "
                "checkpoint of the recipe's model, or choose the class in the recipe (--model CLASS) if you trust it"
            )
    own = {k: v for k, v in hparams.items() if not k.startswith("_")}
    check_args(own, str(path))
    for key, value in network_choices(own).items():
        if not _same(settings.get(key), value):
            raise SchemaError(
                f"{path}: refusing --ckpt_path: its hyper-parameter {key}={value!r} would make loading reach "
                f"the network or the disk, and the recipe does not say so; set --model.init_args.{key} yourself if you mean it"
            )
    changed = sorted(
        k for k, v in settings.items() if v is not None and k in hparams and not k.startswith("_") and not _same(v, hparams[k])
    )
    return changed, checkpoint["state_dict"]


def state_mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """How the tensors ``state`` (a file's) fail to fit a module's own state dict ``own``: its
    missing and unexpected names and shape mismatches, on one line; ``None`` when they fit."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape
    ]
    parts = [
        f"missing {missing}" if missing else "",
        f"unexpected {unexpected}" if unexpected else "",
        f"shape mismatch (file vs model): {shapes}" if shapes else "",
    ]
    return "; ".join(p for p in parts if p) or None
