r"""Griffin's real-gated linear recurrent unit, RG-LRU (De et al. 2024, "Griffin: Mixing Gated Linear
Recurrences with Local Attention for Efficient Language Models", eq. 1-4; Hawk is a stack of them).

.. math::
    u_t &= W_u x_t + b_u                                   \quad\text{the recurrence's input branch} \\
    r_t &= \sigma(W_a x_t + b_a)                           \quad\text{recurrence gate} \\
    i_t &= \sigma(W_x x_t + b_x)                           \quad\text{input gate} \\
    a_t &= a^{c\, r_t}, \quad a = \sigma(\Lambda),\ c = 8   \quad\text{per-unit decay, gated} \\
    h_t &= a_t \odot h_{t-1} + \sqrt{1 - a_t^2} \odot (i_t \odot u_t)

Unlike an LSTM, no gate reads ``h_{t-1}``: the recurrence is linear and diagonal in its state, so a
whole sequence is one :func:`zoo.scan.linear_scan` of ``h_t = a_t h_{t-1} + b_t`` (the speed path,
:meth:`RGLRUCell.sequence`). The paper takes ``u_t = x_t`` inside a block whose linear layer comes
first; ``W_u`` is that layer, so input and hidden sizes may differ. ``a_t`` is computed in log space,
``log a_t = -c r_t softplus(-Λ)``, and ``sqrt(1 - a_t^2)`` as ``sqrt(-expm1(2 log a_t))``: no
cancellation when ``a_t`` is close to 1. That square root's derivative is unbounded at ``a_t = 1``,
which a saturated gate reaches (``r_t = 0`` in float32 for large inputs): the gradient was then
``inf * 0 = NaN``. Its derivative is bounded by :data:`MAX_SQRT_GRADIENT` (:class:`SqrtBoundedGradient`),
as Griffin's reference implementation does; the forward value is the exact square root. ``Λ`` starts so
that ``a^c`` is spread over [0.9, 0.999], as the paper initialises it.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import scan
from .cells import Gates, SequenceCell

C = 8.0  # the paper's fixed exponent c
DECAY_RANGE = (0.9, 0.999)  # a^c at initialisation
MAX_SQRT_GRADIENT = 1000.0  # the largest derivative of sqrt(1 - a_t^2) backpropagated


class SqrtBoundedGradient(torch.autograd.Function):
    """``sqrt(x)`` whose derivative ``1 / (2 sqrt(x))`` is capped at :data:`MAX_SQRT_GRADIENT`
    (reached for ``x < 1 / (4 MAX_SQRT_GRADIENT^2)``), so that ``x = 0`` backpropagates a finite number."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.sqrt(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad / (2 * torch.sqrt(x.clamp(min=1 / (4 * MAX_SQRT_GRADIENT**2))))


def input_scale(log_a: Tensor) -> Tensor:
    """``sqrt(1 - a_t^2)`` from ``log a_t``, without cancellation and with a bounded derivative."""
    return SqrtBoundedGradient.apply(-torch.expm1(2 * log_a))


class RGLRUCell(SequenceCell):
    """``weight_ih`` stacks ``W_a, W_x, W_u`` (``3 * hidden, input``), ``bias_ih`` their biases;
    ``lam`` is ``Λ`` (``hidden``). The state is ``h`` alone."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None
        self.lam = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.input_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        if self.bias_ih is not None:
            nn.init.zeros_(self.bias_ih)
        with torch.no_grad():  # a = (a^c)^(1/c), a^c evenly spread over DECAY_RANGE; Λ = logit(a)
            lo, hi = DECAY_RANGE
            decay = lo + (hi - lo) * (torch.arange(self.hidden_size, dtype=torch.float64) + 0.5) / self.hidden_size
            a = decay ** (1.0 / C)
            self.lam.copy_(torch.log(a / (1 - a)).to(self.lam.dtype))

    def gates(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``(log a_t, i_t, u_t)`` for any leading shape of ``x``: everything that does not read the state."""
        # float32 under autocast: in bfloat16 the decay a_t = exp(log a_t), ~0.999, rounds to 1
        proj = F.linear(x, self.weight_ih, self.bias_ih)
        x_a, x_x, u = proj.to(torch.promote_types(proj.dtype, torch.float32)).chunk(3, dim=-1)
        r = torch.sigmoid(x_a)
        i = torch.sigmoid(x_x)
        log_a = -C * r * F.softplus(-self.lam)  # log(a^(c r)) with log a = log sigma(Λ) = -softplus(-Λ)
        return log_a, i, u

    def step(self, x: Tensor, h: Tensor) -> Tuple[Tensor, Gates]:
        log_a, i, u = self.gates(x)
        a = torch.exp(log_a)
        h = a * h + input_scale(log_a) * (i * u)
        return h, {"decay": a, "input": i}

    def sequence(self, x: Tensor, h: Tensor, mask: Tensor | None = None) -> Tuple[Tensor, Tensor]:
        """Every step at once: ``h_t = a_t h_{t-1} + b_t`` with ``b_t = sqrt(1 - a_t^2) i_t u_t``
        by :func:`zoo.scan.linear_scan`; a padded step gets ``a = 1, b = 0`` (the state stays)."""
        log_a, i, u = self.gates(x)
        a, b = torch.exp(log_a), input_scale(log_a) * (i * u)
        a, b = a.to(h.dtype), b.to(h.dtype)
        if mask is not None:
            keep = mask.unsqueeze(-1)
            a, b = torch.where(keep, a, 1.0), torch.where(keep, b, 0.0)
        out = scan.linear_scan(a, b, h)
        return (out * mask.unsqueeze(-1) if mask is not None else out), out[:, -1]
