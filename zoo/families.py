"""Every cell family by name: the lecture's classic cells and minGRU/minLSTM (:mod:`zoo.cells`), and
the modern recurrences, each in its own module (:mod:`zoo.rglru`, :mod:`zoo.ssm`, :mod:`zoo.xlstm`). The one place a ``cell:``
name becomes a class."""

from __future__ import annotations

from zoo.errors import InputError

from .cells import CLASSIC_CELLS, Cell, SequenceCell
from .rglru import RGLRUCell
from .ssm import S6Cell
from .xlstm import MLSTMCell, SLSTMCell

MODERN_CELLS: dict[str, type[SequenceCell]] = {"rglru": RGLRUCell, "s6": S6Cell, "slstm": SLSTMCell, "mlstm": MLSTMCell}
CELLS: dict[str, type[Cell] | type[SequenceCell]] = {**CLASSIC_CELLS, **MODERN_CELLS}


def cell_class(name: str) -> type[Cell] | type[SequenceCell]:
    """The cell class for a family's name (``"lstm"``, ``"mingru"``, ``"rglru"``, ...), with a clear
    error for anything else."""
    try:
        return CELLS[name]
    except KeyError:
        raise InputError(f"unknown cell {name!r}: expected one of {sorted(CELLS)}") from None


def is_sequence_cell(name: str) -> bool:
    """True for the families that run a whole sequence themselves (:class:`zoo.cells.SequenceCell`)."""
    return name in MODERN_CELLS
