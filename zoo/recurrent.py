"""`Recurrent`: a cell family run over time — deep, bidirectional, padding-aware.

One set of parameters, two ways to run it:

- ``backend="native"`` calls ``torch.nn.RNN/GRU/LSTM`` (cuDNN on GPU, oneDNN on CPU): the fast path.
- ``backend="cells"`` runs the equations of :mod:`zoo.cells` in a Python time loop, so every hidden
  state and every gate can be returned for inspection. The input projection ``W_i x + b_i`` of all
  time steps is one matmul hoisted out of the loop; only ``W_h h`` is computed per step. Where no
  gate is asked for, the same equations run through the faster kernels of :mod:`zoo.kernels`
  (:meth:`Recurrent._run_direction` picks the path).

The layers are stored as single-layer torch modules (``layers.{l}.weight_ih_l0``,
``..._reverse``), so the two backends share the very same tensors and every layer's output can be
returned by either backend.

Padding: pass ``lengths`` and the padded steps never touch the result — the native backend packs the
batch, the cells backend freezes each sequence's state after its last step and runs the reverse
direction over each sequence's own steps only. Outputs at padded positions are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import kernels
from .cells import cell_class
from .sequences import State, hidden_of, lengths_to_mask

NATIVE = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
BACKENDS = ("native", "cells")
Gates = Dict[str, Tensor]
# step(x_proj_t, state) -> (new state, gates): one time step after the input projection
Step = Callable[[Tensor, State], Tuple[State, Gates]]


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


def step_loop(step: Step, x_proj: Tensor, h0: State, mask: Optional[Tensor], keep_gates: bool) -> Tuple[Tensor, State, Gates]:
    """Runs ``step`` over the time-major projections ``x_proj``; ``mask`` ``(batch, time)`` is True at
    real steps: a finished sequence keeps its last state and its outputs are zero. Returns the
    outputs and gates batch first, and the final state."""
    keep = mask.t().unsqueeze(-1).unbind(0) if mask is not None else None  # per step, (batch, 1)
    state, outs, gates = h0, [], []
    # unbind (not x_proj[t]): backward then assembles x_proj's gradient once, not once per step
    for t, x_t in enumerate(x_proj.unbind(0)):
        new, g = step(x_t, state)
        if keep is not None:
            new = tuple(map(torch.where, (keep[t],) * 2, new, state)) if isinstance(new, tuple) else torch.where(keep[t], new, state)
        state = new
        outs.append(hidden_of(state))
        if keep_gates:
            gates.append(g)
    out = torch.stack(outs, 1)
    if mask is not None:
        out = out * mask.unsqueeze(-1)
    gate_seq = {k: torch.stack([g[k] for g in gates], 1) for k in gates[0]} if keep_gates else {}
    return out, state, gate_seq


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
    ) -> None:
        super().__init__()
        cell_class(cell)  # validates the name
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: expected one of {BACKENDS}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.bidirectional, self.dropout, self.backend = bidirectional, dropout, backend
        self.nonlinearity = nonlinearity
        self.num_directions = 2 if bidirectional else 1
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.layers = nn.ModuleList(
            NATIVE[cell](
                input_size if layer == 0 else hidden_size * self.num_directions,
                hidden_size,
                num_layers=1,
                bias=bias,
                batch_first=True,
                bidirectional=bidirectional,
                **extra,
            )
            for layer in range(num_layers)
        )

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
        is_lstm = self.cell == "lstm"
        D = self.num_directions
        hidden, gates, finals = [], [], []
        for index, layer in enumerate(self.layers):
            layer_state = None
            if state is not None:
                rows = slice(index * D, (index + 1) * D)
                layer_state = (state[0][rows], state[1][rows]) if is_lstm else state[rows]
            if backend == "native":
                (x, final), layer_gates = self._run_native(layer, x, lengths, layer_state), None
            else:
                x, final, layer_gates = self._run_cells(layer, x, lengths, layer_state, return_gates)
            finals.append(final)
            if return_hidden:
                hidden.append(x)
            if return_gates:
                gates.append(layer_gates)
            if index < self.num_layers - 1 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        if is_lstm:
            final_state = (torch.cat([f[0] for f in finals]), torch.cat([f[1] for f in finals]))
        else:
            final_state = torch.cat(finals)
        return RecurrentOutput(x, final_state, hidden if return_hidden else None, gates if return_gates else None)

    @staticmethod
    def _run_native(layer: nn.RNNBase, x: Tensor, lengths: Optional[Tensor], state):
        if lengths is None:
            return layer(x, state)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, final = layer(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, final

    def _run_cells(self, layer: nn.RNNBase, x: Tensor, lengths: Optional[Tensor], state, return_gates: bool):
        mask = lengths_to_mask(lengths, x.shape[1], device=x.device) if lengths is not None else None
        outs, finals, all_gates = [], [], []
        for direction in range(self.num_directions):
            inputs = reverse_padded(x, lengths) if direction else x  # each sequence's own steps, reversed
            h0 = self._initial(state, direction, x.shape[0], x)
            out, final, gates = self._run_direction(inputs, h0, Weights.of(layer, direction), mask, return_gates)
            if direction:
                out = reverse_padded(out, lengths)
                gates = {k: reverse_padded(v, lengths) for k, v in gates.items()}
            outs.append(out)
            finals.append(final)
            all_gates.append(gates)
        output = torch.cat(outs, -1)
        if isinstance(finals[0], tuple):
            final = (torch.stack([f[0] for f in finals]), torch.stack([f[1] for f in finals]))
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
        if not return_gates and self.cell != "gru" and torch.is_grad_enabled() and w.hh.requires_grad:
            return self._hoisted_loop(x, h0, w, mask)
        return self._equations_loop(x, h0, w, mask, return_gates)

    def _fused_layer(self, x: Tensor, h0: State, w: Weights):
        """(a) The whole LSTM layer as one autograd node (:class:`zoo.kernels.LSTMLayer`)."""
        out, c = kernels.lstm_layer(x.transpose(0, 1), h0[0], h0[1], *w)
        out = out.transpose(0, 1).contiguous()  # batch first
        return out, (out[:, -1], c), {}

    def _hoisted_loop(self, x: Tensor, h0: State, w: Weights, mask: Optional[Tensor]):
        """(b) The equations loop with ``W_hh``'s gradient in one matmul over all steps
        (:class:`zoo.kernels.HoistedProjection`; RNN and LSTM, where a gradient is needed)."""
        previous: List[Tensor] = []  # h_0 .. h_{T-1}, filled after the loop for the kernel's backward
        x_proj = kernels.HoistedProjection.apply(x.transpose(0, 1), w.ih, w.b_ih, w.hh, w.b_hh, previous)
        # W_hh detached and b_hh already added: the loop must not accumulate their gradients per step
        out, final, _ = step_loop(self._equations_step(w.hh.detach(), None), x_proj, h0, mask, False)
        # out is zero at padded steps where the state was frozen instead; either is fine here, since a
        # frozen step's gates get no gradient (torch.where routes it to the old state).
        previous.append(torch.cat([hidden_of(h0).unsqueeze(0), out.transpose(0, 1)[:-1]]).detach())
        return out, final, {}

    def _equations_loop(self, x: Tensor, h0: State, w: Weights, mask: Optional[Tensor], keep_gates: bool):
        """(c) The cells' ``recur`` step by step in plain autograd (every gate kept if asked)."""
        x_proj = F.linear(x.transpose(0, 1), w.ih, w.b_ih)
        return step_loop(self._equations_step(w.hh, w.b_hh), x_proj, h0, mask, keep_gates)

    def _equations_step(self, w_hh: Tensor, b_hh: Optional[Tensor]) -> Step:
        recur = cell_class(self.cell).recur
        extra = (self.nonlinearity,) if self.cell == "rnn" else ()
        return lambda x_t, state: recur(x_t, state, w_hh, b_hh, *extra)

    def _initial(self, state, direction: int, batch: int, like: Tensor):
        if state is None:
            zeros = like.new_zeros(batch, self.hidden_size)
            return (zeros, zeros) if self.cell == "lstm" else zeros
        if self.cell == "lstm":
            return state[0][direction], state[1][direction]
        return state[direction]

    def extra_repr(self) -> str:
        return (
            f"cell={self.cell!r}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}, backend={self.backend!r}"
        )
