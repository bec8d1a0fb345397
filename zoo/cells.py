"""The three cell families, written from their equations.

Each cell keeps torch's parameter names and gate order (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``), so weights load both ways and the cells can be checked against
``torch.nn.RNNCell`` / ``GRUCell`` / ``LSTMCell``.

A step is split in two, because the input projection ``W_i x + b_i`` does not depend on the previous
state: :class:`~zoo.recurrent.Recurrent` computes it for every time step in one matmul and then calls
:meth:`Cell.recur` inside the time loop, where only the ``W_h h`` matmul remains. All gates of a cell
share that one fused matmul; the result is then split into the gates.

Each :meth:`Cell.recur` is its docstring's equations, one line each, in plain autograd. The faster
ways :class:`~zoo.recurrent.Recurrent` computes the same equations live in :mod:`zoo.kernels`.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .sequences import State

Gates = Dict[str, Tensor]


class Cell(nn.Module):
    """Shared parameters and plumbing; subclasses define ``num_gates`` and :meth:`recur`."""

    num_gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's own initialisation, so a fresh cell behaves like a fresh torch cell.
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def zero_state(self, batch: int, like: Tensor) -> State:
        return like.new_zeros(batch, self.hidden_size)

    def forward(self, x: Tensor, state: State | None = None, return_gates: bool = False):
        """One time step: ``x`` is ``(batch, input_size)``; returns the new state (and the gates)."""
        if state is None:
            state = self.zero_state(x.shape[0], x)
        x_proj = F.linear(x, self.weight_ih, self.bias_ih)
        new_state, gates = self.recur(x_proj, state, self.weight_hh, self.bias_hh, *self.recur_args())
        return (new_state, gates) if return_gates else new_state

    def recur_args(self) -> tuple:
        """Extra positional arguments of :meth:`recur` after ``bias_hh`` (RNN: its nonlinearity)."""
        return ()

    @staticmethod
    def recur(x_proj: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None) -> Tuple[State, Gates]:
        """The step after the input projection ``x_proj = W_i x + b_i``: the new state and the gates."""
        raise NotImplementedError


class RNNCell(Cell):
    r"""Vanilla (Elman) RNN cell.

    .. math::
        h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})

    ``nonlinearity="relu"`` replaces tanh with ReLU.
    """

    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def recur_args(self) -> tuple:
        return (self.nonlinearity,)

    @staticmethod
    def recur(x_proj, h, weight_hh, bias_hh, nonlinearity: str = "tanh"):
        pre = x_proj + F.linear(h, weight_hh, bias_hh)
        h = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
        return h, {}  # no gates


class GRUCell(Cell):
    r"""Gated recurrent unit (Cho et al. 2014), torch's variant.

    .. math::
        r  &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr})            \quad\text{reset gate} \\
        z  &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz})            \quad\text{update gate} \\
        n  &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))   \quad\text{candidate state} \\
        h' &= (1 - z) \odot n + z \odot h

    The reset gate multiplies ``W_hn h + b_hn`` (not ``h``), as cuDNN and torch do.
    """

    num_gates = 3

    @staticmethod
    def recur(x_proj, h, weight_hh, bias_hh):
        x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
        h_r, h_z, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)  # one matmul, three gates
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, {"reset": r, "update": z, "candidate": n}


class LSTMCell(Cell):
    r"""Long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate).

    .. math::
        i  &= \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi})   \quad\text{input gate} \\
        f  &= \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf})   \quad\text{forget gate} \\
        g  &= \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg})    \quad\text{candidate cell} \\
        o  &= \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho})   \quad\text{output gate} \\
        c' &= f \odot c + i \odot g                           \quad\text{memory cell} \\
        h' &= o \odot \tanh(c')

    The state is the pair ``(h, c)``.
    """

    num_gates = 4

    def zero_state(self, batch: int, like: Tensor) -> State:
        h = like.new_zeros(batch, self.hidden_size)
        return h, torch.zeros_like(h)

    @staticmethod
    def recur(x_proj, state, weight_hh, bias_hh):
        h, c = state
        gates = x_proj + F.linear(h, weight_hh, bias_hh)  # one matmul, four gates
        i, f, g, o = gates.chunk(4, dim=-1)
        i = torch.sigmoid(i)
        f = torch.sigmoid(f)
        g = torch.tanh(g)
        o = torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return (h, c), {"input": i, "forget": f, "candidate": g, "output": o, "cell": c}


CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}


def cell_class(name: str) -> type[Cell]:
    """The cell class for ``"rnn" | "gru" | "lstm"``, with a clear error for anything else."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}: expected one of {sorted(CELLS)}") from None
