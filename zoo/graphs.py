"""What a task declares to be exported: its inference graphs, each a module with example inputs.

A task's ``export_graphs(batch, length)`` (:meth:`zoo.tasks.base.TaskModule.export_graphs`) returns
:class:`Graph` s built from its own inference code; :mod:`zoo.export` traces them (every
:class:`~zoo.recurrent.Recurrent` as a scan) and writes the files. A task with no graph -- or a
configuration of one that has none -- raises :class:`ExportError` saying why. The helpers here are
what the tasks' graphs share: a recurrent state as named inputs and outputs, and the dynamic axes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from zoo.errors import UserError
from zoo.sequences import State

__all__ = ["ExportError", "Graph", "state_args", "state_outs", "state_inputs", "next_names", "batch_axes"]


class ExportError(UserError, ValueError):
    """A model (or part of one) that has no exportable inference graph, with the reason."""


@dataclass
class Graph:
    """One graph to export: the module, example inputs (by name), output names, and for each input its
    dynamic axes ``{axis: name}``."""

    name: str
    module: nn.Module
    inputs: Dict[str, Tensor]
    outputs: List[str]
    dynamic: Dict[str, Dict[int, str]] = field(default_factory=dict)


def state_args(h: Tensor, c: Optional[Tensor]) -> State:
    """The graph inputs ``h`` (and ``c``) as a recurrent state."""
    return h if c is None else (h, c)


def state_outs(state: State) -> Tuple[Tensor, ...]:
    """A recurrent state as graph outputs: ``(h,)`` or ``(h, c)``."""
    return tuple(state) if isinstance(state, tuple) else (state,)


def state_inputs(layers: int, batch: int, hidden: int, lstm: bool, gen: torch.Generator) -> Dict[str, Tensor]:
    """Example states ``h`` (and ``c``) in torch's layout ``(layers * directions, batch, hidden)``."""
    h = torch.randn(layers, batch, hidden, generator=gen) * 0.5
    return {"h": h, "c": torch.randn(layers, batch, hidden, generator=gen) * 0.5} if lstm else {"h": h}


def next_names(names: List[str]) -> List[str]:
    """A step graph's state outputs: ``h_next`` for the input ``h`` (ONNX names must be unique)."""
    return [f"{name}_next" for name in names]


def batch_axes(
    inputs: Dict[str, Tensor], axis_of_batch: Dict[str, int], time: Optional[Dict[str, Tuple[int, str]]] = None
) -> Dict[str, Dict[int, str]]:
    """Every input's batch axis (0, or the state's 1) and the named length axes, all dynamic."""
    dynamic = {name: {axis_of_batch.get(name, 0): "batch"} for name in inputs}
    for name, (axis, label) in (time or {}).items():
        if name in dynamic:  # "keys" only where the model attends
            dynamic[name][axis] = label
    return dynamic
