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
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch

from zoo.errors import MissingInputError, NotAFileError, summary
from zoo.hub.errors import CheckpointError, TaskNameError

__all__ = ["TASK_KEY", "TASK_PACKAGE", "resolve_task", "read_checkpoint", "class_path"]

TASK_KEY = "zoo_task"          # the key under which a zoo checkpoint records its task class
TASK_PACKAGE = "zoo.tasks"     # the zoo's own task modules: the only ones a file may name


def class_path(cls: type) -> str:
    """``"package.module.Class"``: how files name a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _split(name: str, allow_modules: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(module, attribute path) when ``name`` lies in an allowed module, else None."""
    for module in sorted(allow_modules, key=len, reverse=True):  # the longest (most specific) first
        if name.startswith(module + "."):
            return module, name[len(module) + 1:]
    if name.startswith(TASK_PACKAGE + "."):
        module, _, attr = name.rpartition(".")
        return module, attr
    return None


def resolve_task(name: str, base: type, where: str, allow_modules: Sequence[str] = ()) -> type:
    """The task class that ``name`` (a dotted path read from ``where``) names: a subclass of ``base``
    defined in a module under ``zoo.tasks.`` or in one of ``allow_modules`` (modules the user named
    explicitly). Raises :class:`~zoo.hub.errors.TaskNameError`, naming ``where`` and what was
    expected, for anything else: the module is checked before it is imported, the class after."""
    expected = (f"a zoo task class: a subclass of {class_path(base)} from a module under {TASK_PACKAGE}. "
                f"(e.g. zoo.tasks.classifier.SequenceClassifier)")
    if allow_modules:
        expected += f" or from {', '.join(allow_modules)}"
    if not isinstance(name, str) or not name or not all(part.isidentifier() for part in name.split(".")):
        raise TaskNameError(f"{where}: task {name!r} is not a dotted path 'module.Class'; expected {expected}")
    found = _split(name, allow_modules)
    if found is None or not found[1]:
        raise TaskNameError(
            f"{where}: refusing task {name!r}: it is not under {TASK_PACKAGE}. and its module was not named by you, "
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


def read_checkpoint(path: Union[str, Path]) -> Tuple[Optional[str], Dict[str, Any], Dict[str, torch.Tensor]]:
    """``(task name or None, hyper-parameters, state dict)`` of a Lightning checkpoint, read with
    ``torch.load(weights_only=True)``: tensors and plain data only, never arbitrary objects. The
    private keys LightningCLI adds to the hyper-parameters (``_class_path``, ...) are dropped."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise NotAFileError(f"checkpoint {path} is a folder; expected a .ckpt file written by `zoo fit` "
                                "(for a pretrained folder, pass it as NAME_OR_FOLDER instead of --ckpt)")
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
    if not isinstance(hparams, dict):
        raise CheckpointError(f"{path}: 'hyper_parameters' must be a dict, got a {type(hparams).__name__}")
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: no 'state_dict' of tensors (is it a checkpoint written by `zoo fit`?)")
    return task, {k: v for k, v in hparams.items() if not str(k).startswith("_")}, state
