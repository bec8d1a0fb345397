"""The cell families, written from their equations.

The three classic cells keep torch's parameter names and gate order (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``), so weights load both ways and the cells can be checked against
``torch.nn.RNNCell`` / ``GRUCell`` / ``LSTMCell``. minGRU and minLSTM (Feng et al. 2024) have no
``weight_hh``: their gates read ``x_t`` only, so the whole sequence can also be computed by a scan
(:mod:`zoo.scan`) from the coefficients :meth:`MinCell.coefficients` returns.

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

from .sequences import State, step_loop

Gates = Dict[str, Tensor]


class Cell(nn.Module):
    """Shared parameters and plumbing; subclasses define ``num_gates`` and :meth:`recur`."""

    num_gates: int = 1
    reads_state: bool = True  # False: the gates depend on x_t only (no weight_hh, no bias_hh)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.num_gates * hidden_size
        recurrent = self.reads_state
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size)) if recurrent else None
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias and recurrent else None
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


def g(x: Tensor) -> Tensor:
    r"""minGRU's candidate activation for the log-space scan: :math:`g(x) = x + 0.5` for
    :math:`x \ge 0`, :math:`\sigma(x)` otherwise -- positive, continuous, linear for large inputs."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


class MinCell(Cell):
    """A cell whose gates read ``x_t`` only, so that ``h_t = a_t * h_{t-1} + b_t``: a linear
    recurrence in ``h`` whose coefficients every step computes without the state."""

    reads_state = False

    @staticmethod
    def coefficients(x_proj: Tensor) -> Tuple[Tensor, Tensor]:
        """``(a, b)`` with ``h_t = a_t * h_{t-1} + b_t``, for any leading shape of ``x_proj``."""
        raise NotImplementedError


class MinGRUCell(MinCell):
    r"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): a GRU whose gates read ``x_t`` only.

    .. math::
        z_t &= \sigma(W_z x_t + b_z)                          \quad\text{update gate} \\
        \tilde h_t &= g(W_h x_t + b_h)                        \quad\text{candidate state} \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    ``weight_ih`` stacks ``W_z, W_h``. The candidate uses :func:`g` (the paper's log-space variant),
    so the state stays positive from a positive start.
    """

    num_gates = 2

    @staticmethod
    def recur(x_proj, h, weight_hh=None, bias_hh=None):
        x_z, x_h = x_proj.chunk(2, dim=-1)
        z = torch.sigmoid(x_z)
        h_tilde = g(x_h)
        h = (1 - z) * h + z * h_tilde
        return h, {"update": z, "candidate": h_tilde}

    @staticmethod
    def coefficients(x_proj):
        x_z, x_h = x_proj.chunk(2, dim=-1)
        # a = 1 - z written as sigma(-x): no cancellation when z is close to 1
        return torch.sigmoid(-x_z), torch.sigmoid(x_z) * g(x_h)


class MinLSTMCell(MinCell):
    r"""minLSTM (Feng et al. 2024): forget and input gates from ``x_t`` only, normalised to sum to 1.

    .. math::
        f_t &= \sigma(W_f x_t + b_f)                          \quad\text{forget gate} \\
        i_t &= \sigma(W_i x_t + b_i)                          \quad\text{input gate} \\
        \tilde h_t &= g(W_h x_t + b_h)                        \quad\text{candidate state} \\
        f'_t &= f_t / (f_t + i_t), \quad i'_t = i_t / (f_t + i_t) \\
        h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

    ``weight_ih`` stacks ``W_f, W_i, W_h``; the state is ``h`` alone (no memory cell); the gates
    returned as ``forget`` and ``input`` are the normalised ``f'`` and ``i'``.
    """

    num_gates = 3

    @staticmethod
    def recur(x_proj, h, weight_hh=None, bias_hh=None):
        x_f, x_i, x_h = x_proj.chunk(3, dim=-1)
        f = torch.sigmoid(x_f)
        i = torch.sigmoid(x_i)
        h_tilde = g(x_h)
        f, i = f / (f + i), i / (f + i)
        h = f * h + i * h_tilde
        return h, {"forget": f, "input": i, "candidate": h_tilde}

    @staticmethod
    def coefficients(x_proj):
        x_f, x_i, x_h = x_proj.chunk(3, dim=-1)
        f, i = torch.sigmoid(x_f), torch.sigmoid(x_i)
        total = f + i
        return f / total, i / total * g(x_h)


CLASSIC_CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell, "mingru": MinGRUCell, "minlstm": MinLSTMCell}


class SequenceCell(nn.Module):
    """A cell family that runs a whole sequence itself -- the modern recurrences (xLSTM, S6, RG-LRU):
    parameters of their own shapes, a state that may be a tuple of several tensors (its first is the
    output ``h``, ``(batch, hidden_size)``), and a speed path beside the equations.

    - :meth:`step` is the docstring's equations for one time step, in plain autograd (``backend="cells"``,
      and streaming);
    - :meth:`sequence` computes the same thing for a whole ``(batch, time, input)`` sequence by the
      family's speed path (``backend="native"``): a parallel or chunkwise scan where the recurrence
      is linear in its state. The default is :meth:`step` in a loop.

    Both freeze a finished sequence's state after its last real step (``mask``) and return zeros at
    padded steps, as :class:`~zoo.recurrent.Recurrent` does for the classic cells.
    """

    #: why the family's step cannot be traced into an exported graph (zoo.export refuses it), or None
    not_exportable: str | None = None

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive integer, got {size!r}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias

    def zero_state(self, batch: int, like: Tensor) -> State:
        return like.new_zeros(batch, self.hidden_size)

    def check_inputs(self, x: Tensor, state: State) -> None:
        """Raises a ValueError naming what was expected unless ``x`` ``(batch, time, input_size)`` has
        the cell's input size and ``state`` the tensors of :meth:`zero_state` (batch first): an input
        or a state of another family or size is refused here, not deep inside the step."""
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{self!r} expects inputs of size {self.input_size}, got {tuple(x.shape)}")

        def shapes(s: State) -> list:
            return [tuple(t.shape) for t in s] if isinstance(s, tuple) else [tuple(getattr(s, "shape", ()))]

        expected = shapes(self.zero_state(x.shape[0], torch.empty(0, device="meta")))
        if shapes(state) != expected:
            raise ValueError(
                f"{self!r} expects a state of {len(expected)} tensor(s) {', '.join(map(str, expected))} per "
                "layer and direction (Recurrent's layout stacks them as (layers * directions, batch, ...)), "
                f"got {', '.join(map(str, shapes(state)))}"
            )

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}"

    def step(self, x: Tensor, state: State) -> Tuple[State, Gates]:
        """One time step: ``x`` ``(batch, input_size)`` -> the new state and the gates."""
        raise NotImplementedError

    def sequence(self, x: Tensor, state: State, mask: Tensor | None = None) -> Tuple[Tensor, State]:
        """Every step of ``x`` ``(batch, time, input_size)`` from ``state``: the outputs
        ``(batch, time, hidden_size)`` and the final state."""
        out, final, _ = step_loop(self.step, x.transpose(0, 1), state, mask, False)
        return out, final

    def forward(self, x: Tensor, state: State | None = None, return_gates: bool = False):
        """One time step, as :meth:`Cell.forward`."""
        if state is None:
            state = self.zero_state(x.shape[0], x)
        new_state, gates = self.step(x, state)
        return (new_state, gates) if return_gates else new_state
