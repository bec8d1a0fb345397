"""The registry rendered for people: the Markdown of docs/pretrained.md and the rows of ``zoo models``."""

from __future__ import annotations

import dataclasses
from typing import Any, Collection, Dict, List, Optional

from zoo.hub.format import WEIGHTS_NAME
from zoo.hub.registry import ModelEntry, list_models, model_entry

__all__ = ["models_markdown", "model_rows"]

# The card fields the Markdown shows elsewhere (the weights line, the commands block) or not at all.
_HIDDEN = ("url", "hub_repo", "demo", "evaluate_command", "command", "export_command")
# The commands block of a model's section, in the order a reader uses them.
_COMMANDS = (
    ("demo", "try it (no data needed)"),
    ("evaluate_command", "measure it (the card's numbers)"),
    ("command", "train it"),
    ("export_command", "export the checkpoint"),
)
#: where a model's gallery picture lives, relative to docs/ (benchmarks/gallery.py draws them)
PICTURE = "img/pretrained/{name}.png"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _weights_where(entry: ModelEntry) -> str:
    where = entry.weights
    if where == "package":
        return f"in the package (`zoo/pretrained/{entry.name}/`)"
    if where == "url":
        return entry.card.url
    if where == "hub":
        return f"Hugging Face Hub `{entry.card.hub_repo}`"
    return "none yet (configuration only)"


def _commands(card: Any) -> List[str]:
    lines = [f"# {what}\n{getattr(card, key)}" for key, what in _COMMANDS if getattr(card, key)]
    return ["", "```bash", "\n".join(lines), "```"] if lines else []


def models_markdown(pictures: Collection[str] = ()) -> str:
    """The model table and one section per model, in Markdown (docs/pretrained.md embeds this): its
    description, its picture (for the names in ``pictures``: :data:`PICTURE` exists), its commands
    and its card."""
    lines = ["| name | task | data | metrics (split) | params | size | weights |", "|---|---|---|---|---|---|---|"]
    entries = [model_entry(name) for name in list_models()]
    for entry in entries:
        card = entry.card
        if card is None:
            lines.append(f"| `{entry.name}` | {entry.description} | | | | | none yet |")
            continue
        metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in card.metrics.items())
        metrics = f"{metrics} ({card.split})" if metrics else "—"
        size = f"{card.size / 2**20:.2f} MiB ({card.dtype})" if card.size else "—"
        params = f"{card.params:,}" if card.params else "—"
        where = {"package": "package", "url": "URL", "hub": "Hub"}.get(entry.weights, "none yet")
        lines.append(f"| `{entry.name}` | {card.task} | {card.data} | {metrics} | {params} | {size} | {where} |")
    for entry in entries:
        card = entry.card
        lines += ["", f"### `{entry.name}`", "", entry.description]
        if entry.name in pictures:
            lines += ["", f"![{entry.name}]({PICTURE.format(name=entry.name)})"]
        lines += [*(_commands(card) if card else []), "", f"- task class: `{entry.task}`", f"- weights: {_weights_where(entry)}"]
        if card is None:
            continue
        for f in dataclasses.fields(card):
            value = getattr(card, f.name)
            if value in (None, "", {}) or f.name in _HIDDEN:
                continue
            if f.name in ("sha256", "recipe"):
                value = f"`{value}`"
            elif f.name == "metrics":
                value = ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items())
            elif f.name == "slice_check":
                value = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
            elif f.name == "size":
                value = f"{value:,} bytes"
            elif f.name == "params":
                value = f"{value:,}"
            lines.append(f"- {f.name.replace('_', ' ')}: {value}")
    return "\n".join(lines) + "\n"


def model_rows(pattern: Optional[str] = None) -> List[Dict[str, Any]]:
    """One dict per registered model (``pattern``: a shell wildcard), for ``zoo models``:
    ``{name, task, metric, size, weights, description}``. ``task`` is the task class's name;
    ``metric`` the card's headline (first) number as text (``"test_acc 0.8975"``); ``size`` the bytes of
    the shipped ``model.safetensors`` (None when the weights are not in the package); ``weights``
    where they come from: ``"package"``, ``"url"``, ``"hub"`` or ``"none"``."""
    rows = []
    for name in list_models(pattern):
        entry = model_entry(name)
        card = entry.card
        metric = ""
        if card and card.metrics:
            key, value = next(iter(card.metrics.items()))
            metric = f"{key} {_fmt(value)}"
        weights = entry.package_dir / WEIGHTS_NAME
        rows.append(
            {
                "name": name,
                "task": entry.task.rpartition(".")[2],
                "metric": metric,
                "size": weights.stat().st_size if entry.weights == "package" and weights.is_file() else None,
                "weights": entry.weights,
                "description": entry.description,
            }
        )
    return rows
