"""`Recurrent`: a cell family run over time — deep, bidirectional, padding-aware.

One set of parameters, two ways to run it:

- ``backend="native"`` calls ``torch.nn.RNN/GRU/LSTM`` (cuDNN on GPU, oneDNN on CPU): the fast path.
  For minGRU and minLSTM, whose gates read ``x_t`` only, the fast path is the parallel scan of
  :mod:`zoo.scan` over the coefficients of :meth:`zoo.cells.MinCell.coefficients`.
- ``backend="cells"`` runs the equations of :mod:`zoo.cells` in a Python time loop, so every hidden
  state and every gate can be returned for inspection. The input projection ``W_i x + b_i`` of all
  time steps is one matmul hoisted out of the loop; only ``W_h h`` is computed per step. Where no
  gate is asked for, the same equations run through the faster kernels of :mod:`zoo.kernels`
  (:meth:`Recurrent._run_direction` picks the path).

The modern families (xLSTM, S6, RG-LRU: :class:`zoo.cells.SequenceCell`) bring their own speed path
(``native``: the cell's ``sequence``) beside their equations (``cells``: its ``step`` in the loop); their
state may be a tuple of several tensors, each ``(layers * directions, batch, ...)``, ``h`` first.

The layers are stored as single-layer torch modules (``layers.{l}.weight_ih_l0``,
``..._reverse``; minGRU/minLSTM: :class:`ScanLayer`, the same names without ``weight_hh``), so the
two backends share the very same tensors and every layer's output can be returned by either backend.

An LSTM's gate biases start memory-friendly (``lstm_init``, :func:`init_lstm_biases`): by default
"chrono" (Tallec & Ollivier 2018), forget biases spread from 0 to log 98 over the units and input
biases their negatives, so units start out keeping 50% to 99% of their content per step (torch's
init: ~50% for all). Loaded weights replace them.

``residual=True`` wraps every layer in the pre-norm residual block of Griffin and Mamba,

    u = RMSNorm(x_l)                      (a learned scale per feature)
    x_{l+1} = x_l + layer(u)              (where x_l has the layer's output size; else layer(u))
    y = RMSNorm_out(x_L)                  (the output the task reads)

so a deep stack of linear recurrences keeps a clean path for the gradient and for the input: as
plain stacks, RG-LRU and S6 did not train past three layers (docs/benchmarks.md).

Padding: pass ``lengths`` and the padded steps never touch the result — the native backend packs the
batch, the cells backend freezes each sequence's state after its last step and runs the reverse
direction over each sequence's own steps only. Outputs at padded positions are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.errors import InputError

from . import kernels, scan
from .cells import MinCell, SequenceCell
from .families import CELLS, MODERN_CELLS, cell_class
from .sequences import State, Step, hidden_of, lengths_to_mask, step_loop

NATIVE = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
BACKENDS = ("native", "cells")
# what each backend runs, per family: the error for a backend a family lacks names these
FAMILY_BACKENDS = {
    **{name: {"native": f"torch.nn.{NATIVE[name].__name__}", "cells": "the equations of zoo.cells"} for name in NATIVE},
    **{
        name: {"native": "the parallel scan of zoo.scan", "cells": "the sequential step of zoo.cells"}
        for name, cls in CELLS.items()
        if isinstance(cls, type) and issubclass(cls, MinCell)
    },
    **{
        name: {"native": f"its speed path ({cls.__module__}.{cls.__name__}.sequence)", "cells": "the equations of its step"}
        for name, cls in MODERN_CELLS.items()
    },
}
LSTM_INITS = ("forget1", "chrono", "torch")
LSTM_INIT = "chrono"  # the default; docs/experiments.md (a) measured it against forget1 and torch's
CHRONO_MAX_STEPS = 100  # chrono's T_max: forget biases log U(1, T_max - 1), memories of up to ~T_max steps


@dataclass
class RecurrentOutput:
    """``output``: top layer, ``(batch, time, directions * hidden)``; ``state``: final state in torch's
    layout, ``(layers * directions, batch, hidden)`` (a pair ``(h, c)`` for LSTM); ``hidden``: every
    layer's output when asked for; ``gates``: every layer's gates (cells backend), each
    ``(batch, time, directions * hidden)``."""

    output: Tensor
    state: State
    hidden: Optional[List[Tensor]] = None
    gates: Optional[List[Dict[str, Tensor]]] = None


class Weights(NamedTuple):
    """One direction's parameters of a single-layer torch module."""

    ih: Tensor
    hh: Tensor
    b_ih: Optional[Tensor]
    b_hh: Optional[Tensor]

    @classmethod
    def of(cls, layer: nn.RNNBase, direction: int) -> "Weights":
        suffix = "_l0_reverse" if direction else "_l0"
        return cls(*(getattr(layer, name + suffix, None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))


def check_backend(cell: str, backend: str) -> None:
    """Raises a ValueError naming the backends ``cell`` supports if ``backend`` is not one of them."""
    supported = FAMILY_BACKENDS[cell]
    if backend not in supported:
        listed = ", ".join(f"{name!r} ({what})" for name, what in supported.items())
        raise InputError(f"unknown backend {backend!r} for cell {cell!r}: it supports {listed}")


def init_lstm_biases(layer: nn.LSTM, scheme: str) -> None:
    """Sets an LSTM layer's gate biases (torch's gate order i, f, g, o; the total ``b_ih + b_hh``
    counts, so ``b_hh`` of those gates is zeroed): ``forget1``: forget bias 1, the rest as torch
    drew it; ``chrono`` (Tallec & Ollivier 2018): forget biases spread as ``log U(1, T_max - 1)``
    over the units and each input bias their negative; ``torch``: unchanged.

    chrono takes the distribution's quantiles instead of drawing from it: the units get the same
    spread of time scales (1 to ~T_max steps) and nothing is drawn from torch's random stream, so
    every other weight of a seeded model stays what it was."""
    if scheme not in LSTM_INITS:
        raise InputError(f"unknown lstm_init {scheme!r}: expected one of {LSTM_INITS}")
    if scheme == "torch" or not layer.bias:
        return
    H = layer.hidden_size
    with torch.no_grad():
        for suffix in ("_l0", "_l0_reverse")[: 1 + layer.bidirectional]:
            b_ih, b_hh = getattr(layer, "bias_ih" + suffix), getattr(layer, "bias_hh" + suffix)
            if scheme == "forget1":
                b_ih[H : 2 * H], b_hh[H : 2 * H] = 1.0, 0.0
            else:
                quantiles = (torch.arange(H, dtype=torch.float64) + 0.5) / H
                forget = torch.log(1 + (CHRONO_MAX_STEPS - 2) * quantiles).to(b_ih.dtype)
                b_ih[H : 2 * H], b_hh[H : 2 * H] = forget, 0.0
                b_ih[:H], b_hh[:H] = -forget, 0.0


class ScanLayer(nn.Module):
    """One layer of minGRU or minLSTM, named like torch's single-layer modules (``weight_ih_l0``,
    ``bias_ih_l0``, ``..._reverse``) so that :class:`Weights` and the hidden-unit tools read it the
    same way; there is no ``weight_hh``. Initialised as the cell initialises itself."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, bias: bool, bidirectional: bool) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bidirectional = input_size, hidden_size, bidirectional
        for suffix in ("_l0", "_l0_reverse")[: 1 + bidirectional]:
            step = cell_class(cell)(input_size, hidden_size, bias)
            self.register_parameter("weight_ih" + suffix, step.weight_ih)
            self.register_parameter("bias_ih" + suffix, step.bias_ih)


class SequenceLayer(nn.Module):
    """One layer of a modern family (:class:`zoo.cells.SequenceCell`): one cell per direction, named
    ``l0`` and ``l0_reverse`` like torch's suffixes (``layers.{l}.l0.weight_ih``)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, bias: bool, bidirectional: bool) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bidirectional = input_size, hidden_size, bidirectional
        self.l0 = cell_class(cell)(input_size, hidden_size, bias)
        if bidirectional:
            self.l0_reverse = cell_class(cell)(input_size, hidden_size, bias)

    def direction(self, index: int) -> SequenceCell:
        return self.l0_reverse if index else self.l0


def reverse_padded(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Reverse each sequence of a batch-first tensor within its own length; padding stays in place."""
    if lengths is None:
        return x.flip(1)
    batch, time = x.shape[:2]
    steps = torch.arange(time, device=x.device).expand(batch, time)
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    index = index.view(batch, time, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


class Recurrent(nn.Module):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        cell: str = "lstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        backend: str = "native",
        nonlinearity: str = "tanh",
        bias: bool = True,
        lstm_init: str = LSTM_INIT,
        residual: bool = False,
    ) -> None:
        super().__init__()
        cell_class(cell)  # validates the name
        check_backend(cell, backend)
        if lstm_init not in LSTM_INITS:
            raise InputError(f"unknown lstm_init {lstm_init!r}: expected one of {LSTM_INITS}")
        if num_layers < 1:
            raise InputError(f"num_layers must be >= 1, got {num_layers}")
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.bidirectional, self.dropout, self.backend = bidirectional, dropout, backend
        self.nonlinearity = nonlinearity
        self.num_directions = 2 if bidirectional else 1
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        sizes = [input_size if layer == 0 else hidden_size * self.num_directions for layer in range(num_layers)]
        if cell in NATIVE:
            self.layers = nn.ModuleList(
                NATIVE[cell](size, hidden_size, num_layers=1, bias=bias, batch_first=True, bidirectional=bidirectional, **extra)
                for size in sizes
            )
        elif cell in MODERN_CELLS:
            self.layers = nn.ModuleList(SequenceLayer(cell, size, hidden_size, bias, bidirectional) for size in sizes)
        else:
            self.layers = nn.ModuleList(ScanLayer(cell, size, hidden_size, bias, bidirectional) for size in sizes)
        if cell == "lstm":
            for layer in self.layers:
                init_lstm_biases(layer, lstm_init)
        self.residual = residual
        if residual:
            self.norms = nn.ModuleList(nn.RMSNorm(size) for size in sizes)
            self.out_norm = nn.RMSNorm(self.output_size)

    def layer_input(self, index: int, x: Tensor) -> Tensor:
        """What layer ``index`` reads from the stack's running value ``x``: ``RMSNorm(x)`` with
        ``residual``, else ``x`` itself."""
        return self.norms[index](x) if self.residual else x

    def layer_output(self, index: int, x: Tensor, out: Tensor) -> Tensor:
        """The stack's running value after layer ``index``, from what it read (``x``) and what it
        returned (``out``): ``x + out`` in a residual block of matching width, else ``out``."""
        return x + out if self.residual and x.shape[-1] == out.shape[-1] else out

    def stack_output(self, x: Tensor) -> Tensor:
        """The output the task reads from the last running value: ``RMSNorm_out(x)`` with ``residual``."""
        return self.out_norm(x) if self.residual else x

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.num_directions

    def forward(
        self,
        x: Tensor,
        lengths: Optional[Tensor] = None,
        state: Optional[State] = None,
        return_hidden: bool = False,
        return_gates: bool = False,
        backend: Optional[str] = None,
    ) -> RecurrentOutput:
        """``x``: ``(batch, time, input_size)``; ``lengths``: ``(batch,)`` true lengths (``None`` = all
        full); ``state``: initial state in torch's layout, ``None`` = zeros."""
        backend = backend or self.backend
        check_backend(self.cell, backend)
        if return_gates and backend != "cells":
            raise ValueError("return_gates needs backend='cells' (torch's fused kernels do not expose gates)")
        if lengths is not None:
            lengths = lengths.to("cpu", torch.long)
            if int(lengths.min()) < 1:
                raise ValueError("every sequence needs length >= 1 (got a length of 0)")
            if int(lengths.max()) > x.shape[1]:
                raise ValueError(f"a length ({int(lengths.max())}) exceeds the time dimension ({x.shape[1]})")
            if int(lengths.min()) == x.shape[1]:
                lengths = None  # nothing is padded: skip packing and masking
        D = self.num_directions
        hidden, gates, finals = [], [], []
        for index, layer in enumerate(self.layers):
            layer_state = None
            if state is not None:
                rows = slice(index * D, (index + 1) * D)
                layer_state = tuple(s[rows] for s in state) if isinstance(state, tuple) else state[rows]
            u = self.layer_input(index, x)
            if backend == "native" and self.cell in NATIVE:
                (out, final), layer_gates = self._run_native(layer, u, lengths, layer_state), None
            else:
                out, final, layer_gates = self._run_cells(layer, u, lengths, layer_state, return_gates, backend == "native")
            x = self.layer_output(index, x, out)
            finals.append(final)
            if return_hidden:
                hidden.append(out)
            if return_gates:
                gates.append(layer_gates)
            if index < self.num_layers - 1 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        if isinstance(finals[0], tuple):
            final_state = tuple(torch.cat(parts) for parts in zip(*finals))
        else:
            final_state = torch.cat(finals)
        x = self.stack_output(x)
        if self.residual and lengths is not None:  # the norm's output at padded steps is zero too
            x = x * lengths_to_mask(lengths, x.shape[1], device=x.device).unsqueeze(-1).to(x.dtype)
        return RecurrentOutput(x, final_state, hidden if return_hidden else None, gates if return_gates else None)

    @staticmethod
    def _run_native(layer: nn.RNNBase, x: Tensor, lengths: Optional[Tensor], state):
        if lengths is None:
            return layer(x, state)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, final = layer(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, final

    def _run_cells(
        self, layer: nn.Module, x: Tensor, lengths: Optional[Tensor], state, return_gates: bool, parallel: bool = False
    ):
        """Each direction of one layer through :meth:`_run_direction` (``parallel``: minGRU's and
        minLSTM's scan, a modern family's :meth:`~zoo.cells.SequenceCell.sequence`), the reverse one
        over each sequence's own steps."""
        mask = lengths_to_mask(lengths, x.shape[1], device=x.device) if lengths is not None else None
        outs, finals, all_gates = [], [], []
        for direction in range(self.num_directions):
            inputs = reverse_padded(x, lengths) if direction else x  # each sequence's own steps, reversed
            h0 = self.direction_state(state, direction, x.shape[0], x, layer)
            if isinstance(layer, SequenceLayer):
                out, final, gates = self._run_sequence_cell(layer.direction(direction), inputs, h0, mask, return_gates, parallel)
            elif parallel:
                out, final, gates = self._scan(inputs, h0, Weights.of(layer, direction), mask)
            else:
                out, final, gates = self._run_direction(inputs, h0, Weights.of(layer, direction), mask, return_gates)
            if direction:
                out = reverse_padded(out, lengths)
                gates = {k: reverse_padded(v, lengths) for k, v in gates.items()}
            outs.append(out)
            finals.append(final)
            all_gates.append(gates)
        output = torch.cat(outs, -1)
        if isinstance(finals[0], tuple):
            final = tuple(torch.stack(parts) for parts in zip(*finals))
        else:
            final = torch.stack(finals)
        gates = {k: torch.cat([g[k] for g in all_gates], -1) for k in all_gates[0]} if return_gates else None
        return output, final, gates

    def _run_direction(self, x: Tensor, h0: State, w: Weights, mask: Optional[Tensor], return_gates: bool):
        """One direction of one layer, ``x`` batch first: picks one of three paths that compute the
        same equations (the kernels only where they measured faster, docs/benchmarks.md), and returns
        ``(output, final state, gates)``."""
        if not return_gates and self.cell == "lstm" and mask is None and not torch.is_autocast_enabled(x.device.type):
            return self._fused_layer(x, h0, w)
        if not return_gates and self.cell in ("rnn", "lstm") and torch.is_grad_enabled() and w.hh.requires_grad:
            return self._hoisted_loop(x, h0, w, mask)
        return self._equations_loop(x, h0, w, mask, return_gates)

    @staticmethod
    def _run_sequence_cell(cell: SequenceCell, x: Tensor, h0: State, mask: Optional[Tensor], return_gates: bool, parallel: bool):
        """A modern family's direction: its speed path (``native``) or its equations step by step
        (``cells``, every gate kept if asked)."""
        cell.check_inputs(x, h0)
        if parallel and not return_gates:
            out, final = cell.sequence(x, h0, mask)
            return out, final, {}
        return step_loop(cell.step, x.transpose(0, 1), h0, mask, return_gates)

    def _fused_layer(self, x: Tensor, h0: State, w: Weights):
        """(a) The whole LSTM layer as one autograd node (:class:`zoo.kernels.LSTMLayer`)."""
        out, c = kernels.lstm_layer(x.transpose(0, 1), h0[0], h0[1], *w)
        out = out.transpose(0, 1).contiguous()  # batch first
        return out, (out[:, -1], c), {}

    def _scan(self, x: Tensor, h0: Tensor, w: Weights, mask: Optional[Tensor]):
        """minGRU/minLSTM, every step at once: ``h_t = a_t h_{t-1} + b_t`` by :func:`zoo.scan.linear_scan`.
        A padded step gets ``a = 1, b = 0``: the state stays as it was, like the step loop's freeze."""
        a, b = cell_class(self.cell).coefficients(F.linear(x, w.ih, w.b_ih))
        a, b = a.to(h0.dtype), b.to(h0.dtype)  # under autocast: the state accumulates in its own dtype
        if mask is not None:
            keep = mask.unsqueeze(-1)
            a, b = torch.where(keep, a, 1.0), torch.where(keep, b, 0.0)
        h = scan.linear_scan(a, b, h0)
        return (h * mask.unsqueeze(-1) if mask is not None else h), h[:, -1], {}

    def _hoisted_loop(self, x: Tensor, h0: State, w: Weights, mask: Optional[Tensor]):
        """(b) The equations loop with ``W_hh``'s gradient in one matmul over all steps
        (:class:`zoo.kernels.HoistedProjection`; RNN and LSTM, where a gradient is needed)."""
        previous: List[Tensor] = []  # h_0 .. h_{T-1}, filled after the loop for the kernel's backward
        x_proj = kernels.HoistedProjection.apply(x.transpose(0, 1), w.ih, w.b_ih, w.hh, w.b_hh, previous)
        # W_hh detached and b_hh already added: the loop must not accumulate their gradients per step
        out, final, _ = step_loop(self.equations_step(w.hh.detach(), None), x_proj, h0, mask, False)
        # out is zero at padded steps where the state was frozen instead; either is fine here, since a
        # frozen step's gates get no gradient (torch.where routes it to the old state).
        previous.append(torch.cat([hidden_of(h0).unsqueeze(0), out.transpose(0, 1)[:-1]]).detach())
        return out, final, {}

    def _equations_loop(self, x: Tensor, h0: State, w: Weights, mask: Optional[Tensor], keep_gates: bool):
        """(c) The cells' ``recur`` step by step in plain autograd (every gate kept if asked)."""
        x_proj = F.linear(x.transpose(0, 1), w.ih, w.b_ih)
        return step_loop(self.equations_step(w.hh, w.b_hh), x_proj, h0, mask, keep_gates)

    def equations_step(self, w_hh: Tensor, b_hh: Optional[Tensor]) -> Step:
        """The cell's equations as one step, ``(x_proj_t, state) -> (state, gates)``: ``x_proj_t`` the
        input already projected (``W_ih x_t + b_ih``), ``w_hh``/``b_hh`` one direction's recurrent
        weights (:class:`Weights`). What the loops here and :func:`zoo.export.scan_forward` iterate."""
        recur = cell_class(self.cell).recur
        extra = (self.nonlinearity,) if self.cell == "rnn" else ()
        return lambda x_t, state: recur(x_t, state, w_hh, b_hh, *extra)

    def initial_state(self, batch: int, like: Tensor, hidden: Optional[Tensor] = None) -> State:
        """The state to start from, in torch's layout: zeros, with the hidden part ``h`` replaced by
        ``hidden`` ``(layers * directions, batch, hidden_size)`` if given (an encoder's summary
        bridged into a decoder). An LSTM's memory cell and a modern family's other tensors start at
        zero (an mLSTM's or S6's ``h`` is an output, not read by its next step: for those, ``hidden``
        only sets what a stream reports before its first step)."""
        parts = [self.direction_state(None, d, batch, like, layer) for layer in self.layers for d in range(self.num_directions)]
        if isinstance(parts[0], tuple):
            state = tuple(torch.stack(p) for p in zip(*parts))
            return (hidden, *state[1:]) if hidden is not None else state
        return hidden if hidden is not None else torch.stack(parts)

    def direction_state(self, state, direction: int, batch: int, like: Tensor, layer: Optional[nn.Module] = None):
        """One direction's starting state: ``state``'s row ``direction`` (torch's layout, one layer's
        rows), or zeros of ``batch`` rows like ``like`` when ``state`` is ``None`` (a modern family's
        own zero state when ``layer`` is a :class:`SequenceLayer`). A tuple ``(h, c)`` for an LSTM."""
        if state is None:
            if isinstance(layer, SequenceLayer):
                return layer.direction(direction).zero_state(batch, like)
            zeros = like.new_zeros(batch, self.hidden_size)
            return (zeros, zeros) if self.cell == "lstm" else zeros
        if isinstance(state, tuple):
            return tuple(s[direction] for s in state)
        return state[direction]

    def extra_repr(self) -> str:
        return (
            f"cell={self.cell!r}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}, backend={self.backend!r}"
            + (", residual=True" if self.residual else "")
        )
