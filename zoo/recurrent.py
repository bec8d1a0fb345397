"""`Recurrent`: a cell family run over time — deep, bidirectional, padding-aware.

One set of parameters, two ways to run it:

- ``backend="native"`` calls ``torch.nn.RNN/GRU/LSTM`` (cuDNN on GPU, oneDNN on CPU): the fast path.
- ``backend="cells"`` runs our cells from :mod:`zoo.cells` in a Python time loop, so every hidden
  state and every gate can be returned for inspection. The input projection ``W_i x + b_i`` of all
  time steps is one matmul hoisted out of the loop; only ``W_h h`` is computed per step.

The layers are stored as single-layer torch modules (``layers.{l}.weight_ih_l0``,
``..._reverse``), so the two backends share the very same tensors and every layer's output can be
returned by either backend.

Padding: pass ``lengths`` and the padded steps never touch the result — the native backend packs the
batch, the cells backend freezes each sequence's state after its last step and runs the reverse
direction over each sequence's own steps only. Outputs at padded positions are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .cells import State, cell_class, lstm_pointwise, lstm_pointwise_backward

NATIVE = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
BACKENDS = ("native", "cells")


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


class _HoistedProjection(torch.autograd.Function):
    """``x W_ih^T + b_ih + b_hh`` for every time step at once, whose backward also returns the
    gradient of ``W_hh``: ``dL/dW_hh = sum_t (dL/dgates_t)^T h_{t-1}``, one matmul over all steps.

    Valid where the recurrence adds ``W_hh h_{t-1} + b_hh`` to this projection (RNN, LSTM): the
    gradient of each step's gates then *is* the gradient of its projection. The time loop uses a
    detached ``W_hh``, so autograd no longer computes and accumulates a full-size weight gradient at
    every step (128 small matmuls and 128 additions of a 4 MB tensor for LSTM 512 become one matmul).
    ``previous`` is filled with the detached ``h_{t-1}`` by the loop, after this forward returns.
    """

    @staticmethod
    def forward(ctx, x, w_ih, b_ih, w_hh, b_hh, previous: list):
        ctx.save_for_backward(x, w_ih)
        ctx.previous, ctx.has_bias = previous, b_ih is not None
        out = F.linear(x, w_ih, b_ih)
        return out + b_hh if b_hh is not None else out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, w_ih = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        grad_x = grad @ w_ih if ctx.needs_input_grad[0] else None
        grad_w_ih = flat.t() @ x.reshape(-1, x.shape[-1])
        grad_w_hh = flat.t() @ torch.stack(ctx.previous).reshape(flat.shape[0], -1)
        grad_b = flat.sum(0) if ctx.has_bias else None
        return grad_x, grad_w_ih, grad_b, grad_w_hh, grad_b, None


class _RecurrentMatmul:
    """``other + a @ weight.T`` for the time loop's small matmuls, ``weight`` fixed for the whole loop.

    On CPU in float32 it runs oneDNN's matmul on a copy of the weight reordered once into oneDNN's
    blocked layout (what ``torch.nn.LSTM``'s fused kernel uses too): for the loop's shapes (64 x 512
    times 512 x 2048 and back) it took 0.62-0.72 ms per matmul where ``torch.addmm`` (MKL's sgemm on
    this AMD CPU) took 0.84-1.28 ms, and the time loop is mostly these matmuls. Elsewhere (other
    dtypes, GPU, a torch without oneDNN): ``torch.addmm``. Same result up to float32 rounding.
    """

    def __init__(self, weight: Tensor, batch: int) -> None:
        self.weight, self.packed = weight, None
        if weight.device.type == "cpu" and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available():
            try:
                self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, batch)
            except (AttributeError, RuntimeError):  # a torch build without these (private) ops
                self.packed = None

    def __call__(self, other: Tensor, a: Tensor) -> Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(a, other, self.packed, None, "add")
        return torch.addmm(other, a, self.weight.t())


class _LSTMLayer(torch.autograd.Function):
    r"""One direction of an LSTM layer over a whole sequence, as one autograd node — for speed.

    The time loop computes :meth:`~zoo.cells.LSTMCell.recur`'s equations, step by step
    (:func:`~zoo.cells.lstm_pointwise`), and its backward runs the same loop in reverse by hand
    (:func:`~zoo.cells.lstm_pointwise_backward`). Autograd then records one node instead of a few
    per step, and nothing is assembled with ``stack``/``cat``: every step writes its pre-activations
    (turned into activated gates in place), ``c``, ``tanh(c)`` and ``h`` into preallocated
    ``(time, batch, ...)`` tensors, and its gradient into one ``(time, batch, 4 * hidden)`` tensor,
    from which the weights' gradients are each one matmul over all steps; the per-step matmuls use
    :class:`_RecurrentMatmul`. LSTM 512, batch 64 x 128 steps, forward+backward on 2 CPU cores: 1.08-1.10x
    ``torch.nn.LSTM``'s time where the step-by-step autograd path took 1.30-1.35x (docs/benchmarks.md).
    Used when there is no padding, no gate is asked for and autocast is off; otherwise the time loop
    below runs step by step (with :class:`~zoo.cells.LSTMPointwise` unless gates are asked for).

    ``x``: ``(time, batch, input)``; returns ``h_1..h_T`` ``(time, batch, hidden)`` and ``c_T``.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        T = x.shape[0]
        bias = b_ih + b_hh if b_ih is not None else None
        x_proj = F.linear(x, w_ih, bias).contiguous()  # W_i x_t + b_i + b_h, all steps in one matmul
        act = x_proj  # each step's activated gates overwrite its x_proj once it is used
        out = x.new_empty(T, *h0.shape)  # h_1 .. h_T
        c_prev = x.new_empty(T, *h0.shape)  # c_0 .. c_{T-1}
        tanh_c = x.new_empty(T, *h0.shape)
        c_prev[0] = c0
        c_last = torch.empty_like(c0)
        recurrent = _RecurrentMatmul(w_hh, h0.shape[0])
        for t in range(T):
            gates = recurrent(x_proj[t], out[t - 1] if t else h0)  # W_i x_t + b + W_h h_{t-1}
            lstm_pointwise(gates, c_prev[t], act[t], c_prev[t + 1] if t + 1 < T else c_last, tanh_c[t], out[t])
        ctx.save_for_backward(x, h0, w_ih, w_hh, act, c_prev, tanh_c, out)
        ctx.has_bias = bias is not None
        return out, c_last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, grad_c_last):
        x, h0, w_ih, w_hh, act, c_prev, tanh_c, out = ctx.saved_tensors
        T, H = x.shape[0], h0.shape[-1]
        grad_gates = torch.empty_like(act)  # dL/d(pre-activations), every step
        grad_h, grad_c = grad_out[T - 1], grad_c_last
        recurrent = _RecurrentMatmul(w_hh.t().contiguous(), h0.shape[0])
        for t in reversed(range(T)):
            grad_c = lstm_pointwise_backward(grad_h, grad_c, act[t], c_prev[t], tanh_c[t], grad_gates[t])
            if t:  # dL/dh_{t-1}: from its own output and through the next step's W_h h_{t-1}
                grad_h = recurrent(grad_out[t - 1], grad_gates[t])
        need = ctx.needs_input_grad
        flat = grad_gates.view(-1, grad_gates.shape[-1])
        grad_x = grad_gates @ w_ih if need[0] else None
        grad_h0 = grad_gates[0] @ w_hh if need[1] else None
        grad_c0 = grad_c if need[2] else None
        grad_w_ih = flat.t() @ x.reshape(flat.shape[0], -1) if need[3] else None
        grad_w_hh = None
        if need[4]:  # sum_t dL/dgates_t^T h_{t-1}: one matmul over steps 1.., one for step 0
            grad_w_hh = torch.addmm(grad_gates[0].t() @ h0, flat[h0.shape[0] :].t(), out[:-1].reshape(-1, H))
        grad_b = flat.sum(0) if ctx.has_bias else None
        return grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_b, grad_b


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
        recur = cell_class(self.cell).recur
        extra = (self.nonlinearity,) if self.cell == "rnn" else ()
        batch, time = x.shape[:2]
        mask = None
        if lengths is not None:  # (time, batch, 1): True where the step is real
            mask = (torch.arange(time).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(-1).to(x.device)
        outs, finals, all_gates = [], [], []
        for direction in range(self.num_directions):
            suffix = "_reverse" if direction else ""
            w_ih, w_hh = getattr(layer, "weight_ih_l0" + suffix), getattr(layer, "weight_hh_l0" + suffix)
            b_ih, b_hh = getattr(layer, "bias_ih_l0" + suffix, None), getattr(layer, "bias_hh_l0" + suffix, None)
            inputs = reverse_padded(x, lengths) if direction else x
            h = self._initial(state, direction, batch, x)
            fast = mask is None and not return_gates and not torch.is_autocast_enabled(x.device.type)
            if self.cell == "lstm" and fast:  # the whole layer as one autograd node, see _LSTMLayer
                out, c = _LSTMLayer.apply(inputs.transpose(0, 1), h[0], h[1], w_ih, w_hh, b_ih, b_hh)
                out = out.transpose(0, 1).contiguous()  # batch first, as the step-by-step path's stack
                outs.append(reverse_padded(out, None) if direction else out)
                finals.append((out[:, -1], c))
                all_gates.append({})
                continue
            # All time steps' input projections in one matmul, hoisted out of the loop. unbind (not
            # x_proj[t]) so backward assembles the gradient once instead of once per step.
            previous = None
            if self.cell != "gru" and torch.is_grad_enabled() and w_hh.requires_grad:
                previous = []  # h_{t-1} of every step, for W_hh's gradient in one matmul
                x_proj = _HoistedProjection.apply(inputs.transpose(0, 1), w_ih, b_ih, w_hh, b_hh, previous)
                w_hh, b_hh = w_hh.detach(), None
            else:
                x_proj = F.linear(inputs.transpose(0, 1), w_ih, b_ih)
            steps, step_gates = [], []
            for t, x_t in enumerate(x_proj.unbind(0)):
                if previous is not None:
                    previous.append((h[0] if isinstance(h, tuple) else h).detach())
                new, g = recur(x_t, h, w_hh, b_hh, *extra, return_gates=return_gates)
                if mask is not None:  # finished sequences keep their last state
                    keep = mask[t]
                    new = tuple(torch.where(keep, n, o) for n, o in zip(new, h)) if isinstance(new, tuple) else torch.where(keep, new, h)
                h = new
                steps.append(h[0] if isinstance(h, tuple) else h)
                if return_gates:
                    step_gates.append(g)
            out = torch.stack(steps, 1)
            if mask is not None:
                out = out * mask.transpose(0, 1)
            gate_seq = {k: torch.stack([s[k] for s in step_gates], 1) for k in step_gates[0]} if return_gates else {}
            if direction:
                out = reverse_padded(out, lengths)
                gate_seq = {k: reverse_padded(v, lengths) for k, v in gate_seq.items()}
            outs.append(out)
            finals.append(h)
            all_gates.append(gate_seq)
        output = torch.cat(outs, -1)
        if isinstance(finals[0], tuple):
            final = (torch.stack([f[0] for f in finals]), torch.stack([f[1] for f in finals]))
        else:
            final = torch.stack(finals)
        gates = {k: torch.cat([g[k] for g in all_gates], -1) for k in all_gates[0]} if return_gates else None
        return output, final, gates

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
