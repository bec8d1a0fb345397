"""The registry of named models: what each name builds, and its card.

A registered model is data: the task class as a dotted path (``"zoo.tasks.classifier.SequenceClassifier"``),
its init args (the recipe's model section), a one-line description and a :class:`ModelCard` with
what was measured for the weights that ship. Nothing here imports a task: turning the dotted path
into a class is :func:`zoo.tasks.resolve.resolve_task`'s job, so the hub stays below the tasks.
The models themselves are registered in :mod:`zoo.hub.models`.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional

from zoo.hub.errors import UnknownModelError
from zoo.hub.format import CONFIG_NAME

__all__ = ["PACKAGE_DIR", "ModelCard", "ModelEntry", "register_model", "list_models", "model_entry", "unknown_model"]

# Weights small enough to ship live inside the package, one folder per registered name.
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "pretrained"


@dataclass(frozen=True)
class ModelCard:
    """The facts about one set of weights, as data (rendered by :func:`zoo.hub.cards.models_markdown`)."""

    task: str  # what the model does, in words
    data: str  # the data set it was trained and measured on
    split: str  # the split the metrics were measured on
    metrics: Dict[str, float]  # name -> value on ``split``; the first is the headline
    scorer: str  # how ``metrics`` were computed (exactly)
    recipe: str  # the recipe file that trained it
    command: str  # the exact command that trained it
    export_command: str = ""  # the command that turned its checkpoint into the folder
    evaluate_command: str = ""  # the command that measured ``metrics`` (zoo models --evaluate ...)
    demo: str = ""  # one command that shows the model at work, needing no data
    params: Optional[int] = None  # number of parameters
    size: Optional[int] = None  # bytes of model.safetensors
    dtype: str = ""  # dtype stored in model.safetensors
    data_license: str = ""
    sha256: Optional[str] = None  # of model.safetensors
    url: Optional[str] = None  # remote folder/archive when not shipped in the package
    hub_repo: Optional[str] = None  # Hugging Face Hub repo id ("owner/name[@revision]"), likewise
    # A quick re-measurement the tests repeat (tests/test_hub_shipped.py): the scorer's options (``limit``,
    # ``split``, ``max_chars``; a data path ``corpus``/``imdb``/``multi30k`` relative to ../shared/data, or a
    # built-in corpus name; ``python``: the X.Y whose stdlib is the corpus) and every number it must give.
    slice_check: Dict[str, Any] = field(default_factory=dict)
    notes: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One registered name: the task class by its dotted path, its init args, its card."""

    name: str
    task: str  # "package.module.Class", resolved by zoo.tasks.resolve
    init_args: Mapping[str, Any]  # read-only; copy with dict(entry.init_args)
    description: str
    card: Optional[ModelCard] = None

    @property
    def package_dir(self) -> Path:
        return PACKAGE_DIR / self.name

    @property
    def weights(self) -> str:
        """Where the weights are: ``"package"``, ``"url"``, ``"hub"`` or ``"none"``."""
        if (self.package_dir / CONFIG_NAME).is_file():
            return "package"
        if self.card and self.card.url:
            return "url"
        if self.card and self.card.hub_repo:
            return "hub"
        return "none"

    @property
    def has_weights(self) -> bool:
        return self.weights != "none"


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(
    name: str, *, task: str, init_args: Mapping[str, Any], description: str, card: Optional[ModelCard] = None
) -> ModelEntry:
    """Register ``name`` (a valid identifier, registered once) and return its entry."""
    if not name.isidentifier():
        raise ValueError(f"model name {name!r} must be an identifier (letters, digits, '_')")
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    module, _, cls = task.rpartition(".")
    if not module or not cls:
        raise ValueError(f"model {name!r}: task must be a dotted path 'module.Class', got {task!r}")
    entry = ModelEntry(name, task, MappingProxyType(dict(init_args)), description, card)
    _REGISTRY[name] = entry
    return entry


def list_models(pattern: Optional[str] = None, pretrained: bool = False) -> List[str]:
    """Registered names, sorted; ``pattern`` is a shell-style wildcard (``"*lstm*"``);
    ``pretrained=True`` keeps only those with weights."""
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if pretrained:
        names = [n for n in names if _REGISTRY[n].has_weights]
    return names


def unknown_model(name: str, extra: str = "") -> UnknownModelError:
    """The error for a name nobody registered, with the closest registered names."""
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownModelError(f"unknown model {name!r}.{hint} Registered: {', '.join(list_models())}.{extra}")


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (:class:`UnknownModelError` with the closest names if none)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_model(name) from None
