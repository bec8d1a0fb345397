"""The three cell families, written from their equations.

Each cell keeps torch's parameter names and gate order (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``), so weights load both ways and the cells can be checked against
``torch.nn.RNNCell`` / ``GRUCell`` / ``LSTMCell``.

A step is split in two, because the input projection ``W_i x + b_i`` does not depend on the previous
state: :class:`~zoo.recurrent.Recurrent` computes it for every time step in one matmul and then calls
:meth:`Cell.recur` inside the time loop, where only the ``W_h h`` matmul remains. All gates of a cell
share that one fused matmul; the result is then split into the gates.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = Union[Tensor, Tuple[Tensor, Tensor]]
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
        new_state, gates = self.recur(x_proj, state, self.weight_hh, self.bias_hh, return_gates=return_gates)
        return (new_state, gates) if return_gates else new_state

    @staticmethod
    def recur(
        x_proj: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None, return_gates: bool = True
    ) -> Tuple[State, Gates]:
        """The step after the input projection. With ``return_gates=False`` a cell may skip building
        the gates dict (and return ``{}``) to take a faster path."""
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

    def forward(self, x: Tensor, state: State | None = None, return_gates: bool = False):
        if state is None:
            state = self.zero_state(x.shape[0], x)
        x_proj = F.linear(x, self.weight_ih, self.bias_ih)
        new_state, gates = self.recur(x_proj, state, self.weight_hh, self.bias_hh, self.nonlinearity)
        return (new_state, gates) if return_gates else new_state

    @staticmethod
    def recur(x_proj, h, weight_hh, bias_hh, nonlinearity: str = "tanh", return_gates: bool = True):
        pre = x_proj + F.linear(h, weight_hh, bias_hh)
        h = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
        return h, {}


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
    def recur(x_proj, h, weight_hh, bias_hh, return_gates: bool = True):
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

    The state is the pair ``(h, c)``. Without ``return_gates`` the part after the matmul runs as
    :class:`LSTMPointwise` (the same equations with a hand-written backward, for speed).
    """

    num_gates = 4

    def zero_state(self, batch: int, like: Tensor) -> State:
        h = like.new_zeros(batch, self.hidden_size)
        return h, torch.zeros_like(h)

    @staticmethod
    def recur(x_proj, state, weight_hh, bias_hh, return_gates: bool = True):
        h, c = state
        gates = x_proj + F.linear(h, weight_hh, bias_hh)  # one matmul, four gates
        if not return_gates:  # same equations, fused: see LSTMPointwise
            return LSTMPointwise.apply(gates, c), {}
        i, f, g, o = gates.chunk(4, dim=-1)
        i = torch.sigmoid(i)
        f = torch.sigmoid(f)
        g = torch.tanh(g)
        o = torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return (h, c), {"input": i, "forget": f, "candidate": g, "output": o, "cell": c}


class LSTMPointwise(torch.autograd.Function):
    r"""``(h', c') = LSTMPointwise.apply(gates, c)``: an LSTM step after its matmul, ``gates`` being the
    pre-activations ``W_i x + b_i + W_h h + b_h`` (``(batch, 4 * hidden)``, gate order i, f, g, o).

    It exists for speed only: it computes exactly :meth:`LSTMCell.recur`'s equations, but as one
    autograd node with a hand-written backward. Through autograd the same step is ~15 small ops,
    each recorded, saved for and replayed by the engine one by one (plus a ``cat`` per step to
    reassemble the chunks' gradients). Here the forward saves the activated gates, ``c`` and
    ``tanh(c')``, and the backward is 11 pointwise ops (:func:`lstm_pointwise_backward`). It serves
    :class:`LSTMCell` and the padded case of :class:`~zoo.recurrent.Recurrent`; an unpadded sequence
    runs as one node for the whole layer (``zoo.recurrent._LSTMLayer``) on the same two functions.
    """

    @staticmethod
    def forward(ctx, gates: Tensor, c: Tensor):
        act, c_new, tanh_c, h_new = torch.empty_like(gates), torch.empty_like(c), torch.empty_like(c), torch.empty_like(c)
        lstm_pointwise(gates, c, act, c_new, tanh_c, h_new)
        ctx.save_for_backward(act, c, tanh_c)
        return h_new, c_new

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor, grad_c: Tensor):
        act, c, tanh_c = ctx.saved_tensors
        grad_gates = torch.empty_like(act)
        grad_c = lstm_pointwise_backward(grad_h, grad_c, act, c, tanh_c, grad_gates)
        return grad_gates, grad_c


def lstm_pointwise(gates: Tensor, c: Tensor, act: Tensor, c_new: Tensor, tanh_c: Tensor, h_new: Tensor) -> None:
    """:meth:`LSTMCell.recur` after the matmul, written into preallocated tensors: the activated gates
    into ``act`` (may be ``gates`` itself: then in place), ``c'``, ``tanh(c')`` and ``h'``."""
    H = c.shape[-1]
    i, f, g, o = act.split(H, dim=-1)
    torch.sigmoid(gates[..., : 2 * H], out=act[..., : 2 * H])  # i, f = sigma(.)  (adjacent: one op)
    torch.tanh(gates[..., 2 * H : 3 * H], out=g)  # g = tanh(.)
    torch.sigmoid(gates[..., 3 * H :], out=o)  # o = sigma(.)
    torch.addcmul(f * c, i, g, out=c_new)  # c' = f * c + i * g
    torch.tanh(c_new, out=tanh_c)
    torch.mul(o, tanh_c, out=h_new)  # h' = o * tanh(c')


def lstm_pointwise_backward(
    grad_h: Tensor, grad_c: Tensor, act: Tensor, c: Tensor, tanh_c: Tensor, grad_gates: Tensor
) -> Tensor:
    """The backward of :func:`lstm_pointwise`: given dL/dh' and dL/dc' (from later steps), writes
    dL/d(pre-activations) into ``grad_gates`` and returns dL/dc."""
    H = c.shape[-1]
    i, f, g, o = act.split(H, dim=-1)
    # dL/dc' in all: from the next step and through h' = o * tanh(c')
    grad_c = grad_c + _tanh_backward(grad_h * o, tanh_c)
    grad_c_prev = grad_c * f  # dL/dc = dL/dc' * f
    d_i, d_f, d_g, d_o = grad_gates.split(H, dim=-1)  # dL/d(activated gate), then in place:
    torch.mul(grad_c, g, out=d_i)
    torch.mul(grad_c, c, out=d_f)
    torch.mul(grad_c, i, out=d_g)
    torch.mul(grad_h, tanh_c, out=d_o)
    # through the activations: sigma' = s (1 - s) for i, f, o; tanh' = 1 - t^2 for g
    _sigmoid_backward(grad_gates[..., : 2 * H], act[..., : 2 * H], out=grad_gates[..., : 2 * H])
    _tanh_backward(d_g, g, out=d_g)
    _sigmoid_backward(d_o, o, out=d_o)
    return grad_c_prev


def _sigmoid_backward(grad: Tensor, s: Tensor, out: Tensor) -> Tensor:
    """``grad * s * (1 - s)`` in one op, ``s = sigmoid(x)``."""
    return torch.ops.aten.sigmoid_backward.grad_input(grad, s, grad_input=out)


def _tanh_backward(grad: Tensor, t: Tensor, out: Tensor | None = None) -> Tensor:
    """``grad * (1 - t^2)`` in one op, ``t = tanh(x)``."""
    if out is None:
        return torch.ops.aten.tanh_backward(grad, t)
    return torch.ops.aten.tanh_backward.grad_input(grad, t, grad_input=out)


CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}


def cell_class(name: str) -> type[Cell]:
    """The cell class for ``"rnn" | "gru" | "lstm"``, with a clear error for anything else."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}: expected one of {sorted(CELLS)}") from None
