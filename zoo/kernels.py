"""Speed paths for :class:`~zoo.recurrent.Recurrent`'s ``backend="cells"``: the equations of
:mod:`zoo.cells`, computed with hand-written backward passes and preallocated buffers.

Nothing here defines a new equation. Each kernel names the equations of :mod:`zoo.cells` it computes
and what it gains, measured side by side with the plain-autograd equations path
(``benchmarks/lstm_layer_step.py``, table in docs/benchmarks.md); tests/test_kernels.py gradchecks
each one and compares it with the plain path and ``torch.nn.LSTM``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


class HoistedProjection(torch.autograd.Function):
    """``x W_ih^T + b_ih + b_hh`` for every time step at once, whose backward also returns the
    gradient of ``W_hh``: ``dL/dW_hh = sum_t (dL/dgates_t)^T h_{t-1}``, one matmul over all steps.

    Valid where the recurrence adds ``W_hh h_{t-1} + b_hh`` to this projection (RNN, LSTM): the
    gradient of each step's gates then *is* the gradient of its projection. The time loop uses a
    detached ``W_hh``, so autograd no longer computes and accumulates a full-size weight gradient at
    every step (128 small matmuls and 128 additions of a 4 MB tensor for LSTM 512 become one matmul).
    The caller appends ``h_0 .. h_{T-1}`` (detached, ``(time, batch, hidden)``) to ``previous`` once
    the loop has run; the backward reads it from there. Measured (docs/benchmarks.md, 2 CPU cores,
    hidden 512, 64 x 128, forward+backward, per-round median): 0.92x the plain equations loop's time
    for LSTM unpadded, 0.77x (0.91x in a second run) padded; RNN 0.63x unpadded, 0.66x padded.
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
        grad_w_hh = flat.t() @ ctx.previous[0].reshape(flat.shape[0], -1)
        grad_b = flat.sum(0) if ctx.has_bias else None
        return grad_x, grad_w_ih, grad_b, grad_w_hh, grad_b, None


def lstm_pointwise(gates: Tensor, c: Tensor, act: Tensor, c_new: Tensor, tanh_c: Tensor, h_new: Tensor) -> None:
    """:meth:`zoo.cells.LSTMCell.recur` after the matmul, written into preallocated tensors: the
    activated gates into ``act`` (may be ``gates`` itself: then in place), ``c'``, ``tanh(c')``, ``h'``."""
    H = c.shape[-1]
    i, f, g, o = act.split(H, dim=-1)
    torch.sigmoid(gates[..., : 2 * H], out=act[..., : 2 * H])  # i, f = sigma(.)  (adjacent: one op)
    torch.tanh(gates[..., 2 * H : 3 * H], out=g)  # g = tanh(.)
    torch.sigmoid(gates[..., 3 * H :], out=o)  # o = sigma(.)
    torch.addcmul(f * c, i, g, out=c_new)  # c' = f * c + i * g
    torch.tanh(c_new, out=tanh_c)
    torch.mul(o, tanh_c, out=h_new)  # h' = o * tanh(c')


def lstm_pointwise_backward(grad_h: Tensor, grad_c: Tensor, act: Tensor, c: Tensor, tanh_c: Tensor, grad_gates: Tensor) -> Tensor:
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


def _tanh_backward(grad: Tensor, t: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``grad * (1 - t^2)`` in one op, ``t = tanh(x)``."""
    if out is None:
        return torch.ops.aten.tanh_backward(grad, t)
    return torch.ops.aten.tanh_backward.grad_input(grad, t, grad_input=out)


def onednn_packed(weight: Tensor, batch: int) -> Optional[Tensor]:
    """``weight`` reordered once into oneDNN's blocked layout for ``batch`` rows, or ``None`` where
    that is not available (GPU, dtypes other than float32, a torch build without these private ops)."""
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, batch)
    except (AttributeError, RuntimeError):
        return None


class RecurrentMatmul:
    """``other + a @ weight.T`` for the time loop's small matmuls, ``weight`` fixed for the whole loop:
    the ``W_hh h_{t-1}`` of every cell's equations (and ``dgates W_hh`` in a backward).

    On CPU in float32 it runs oneDNN's matmul on the weight reordered once (:func:`onednn_packed`, the
    layout ``torch.nn.LSTM``'s fused kernel uses too); elsewhere ``torch.addmm``. Same result up to
    float32 rounding. For the loop's shapes (64 x 512 times 512 x 2048 and back) 0.62-0.72 ms per
    matmul where ``torch.addmm`` (MKL's sgemm on the AMD EPYC) took 0.84-1.28 ms; it is what makes
    :class:`LSTMLayer` fast (0.69x the equations loop with it, 0.98x with ``torch.addmm``).
    """

    def __init__(self, weight: Tensor, batch: int) -> None:
        self.weight, self.packed = weight, onednn_packed(weight, batch)

    def __call__(self, other: Tensor, a: Tensor) -> Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(a, other, self.packed, None, "add")
        return torch.addmm(other, a, self.weight.t())


class LSTMLayer(torch.autograd.Function):
    r"""One direction of an LSTM layer over a whole sequence, as one autograd node:
    :meth:`zoo.cells.LSTMCell.recur`'s equations at every step (:func:`lstm_pointwise`), and its
    backward the same loop in reverse by hand (:func:`lstm_pointwise_backward`).

    Autograd records one node instead of a few per step, and nothing is assembled with
    ``stack``/``cat``: every step writes its pre-activations (turned into activated gates in place),
    ``c``, ``tanh(c)`` and ``h`` into preallocated ``(time, batch, ...)`` tensors, and its gradient into
    one ``(time, batch, 4 * hidden)`` tensor, from which the weights' gradients are each one matmul
    over all steps; ``b_ih + b_hh`` is folded into the input projection; the per-step matmuls use
    :class:`RecurrentMatmul`.

    Measured (docs/benchmarks.md): 0.69x the plain equations loop's time for LSTM 512, 64 x 128,
    forward+backward on 2 CPU cores (1.35x ``torch.nn.LSTM`` on a busy machine; 1.08-1.10x in the
    last quiet run). ``x``: ``(time, batch, input)``; returns ``h_1..h_T`` ``(time, batch, hidden)``
    and ``c_T``.
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
        recurrent = RecurrentMatmul(w_hh, h0.shape[0])
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
        recurrent = RecurrentMatmul(w_hh.t().contiguous(), h0.shape[0])
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


def lstm_layer(
    x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """:class:`LSTMLayer` as a function (``x`` time-major)."""
    return LSTMLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh)


__all__: List[str] = [
    "HoistedProjection",
    "LSTMLayer",
    "RecurrentMatmul",
    "lstm_layer",
    "lstm_pointwise",
    "lstm_pointwise_backward",
    "onednn_packed",
]
