r"""The parallel training path of minGRU and minLSTM: every state of the linear recurrence

.. math::
    h_t = a_t \odot h_{t-1} + b_t, \qquad t = 1 .. T, \quad h_0 \text{ given},

at once, from coefficients that do not depend on the state (:meth:`zoo.cells.MinCell.coefficients`).

Two ways to compute the same thing:

- :func:`log_space_scan`, Heinsen (2023): :math:`h_t = e^{a^*_t}\,(h_0 + \sum_{s \le t} e^{\log b_s - a^*_s})`
  with :math:`a^*_t = \sum_{s \le t} \log a_s`: one ``cumsum`` and one ``logcumsumexp``. Fully
  parallel, but on a CPU ``logcumsumexp`` and the transcendentals dominate (docs/benchmarks.md),
  and in float32 :math:`a^*_t` grows with ``t`` (about ``-0.7 t`` for gates near 0.5), so
  ``a*_t + logcumsumexp(...)`` loses digits on long sequences.
- :func:`linear_scan`, the path :class:`~zoo.recurrent.Recurrent` trains with: a chunked scan in
  linear space. The time axis is cut into chunks of ``C`` steps; one pass runs the recurrence inside
  every chunk at once from a zero state (``C`` steps, each over all chunks) and multiplies up each
  chunk's gates; a pass over the ``T / C`` chunks carries the true state across chunk borders; a
  last pass reruns each chunk from its true start. Only products and sums of the coefficients, no
  division, logarithm or exponential: with ``a_t`` in [0, 1] nothing can overflow (a product that
  underflows to 0 is a state that has forgotten), and it equals the sequential step to rounding.
  Its backward is the same scan run backwards in time (:class:`LinearScan`).

Tensors are batch first: ``a``, ``b`` ``(batch, time, hidden)``, ``h0`` ``(batch, hidden)``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor


def log_space_scan(a: Tensor, b: Tensor, h0: Optional[Tensor] = None) -> Tensor:
    """Heinsen's scan: ``h_1 .. h_T`` from ``a > 0`` and ``b > 0`` (minGRU's and minLSTM's, with
    :func:`zoo.cells.g`), through ``cumsum`` and ``logcumsumexp``. ``h0`` may have any sign: its
    share ``e^{a*_t} h0`` is added in linear space."""
    a_star = torch.cumsum(torch.log(a), dim=1)
    h = torch.exp(a_star + torch.logcumsumexp(torch.log(b) - a_star, dim=1))
    return h if h0 is None else h + torch.exp(a_star) * h0.unsqueeze(1)


def chunk_size(T: int) -> int:
    """A divisor of ``T`` near ``sqrt(T)`` (the loops then take ~3 sqrt(T) steps), or ``sqrt(T)``
    itself when ``T`` has none close (the last chunk is then padded)."""
    root = max(1, round(math.sqrt(T)))
    for offset in range(root // 2):
        for c in (root + offset, root - offset):
            if 0 < c <= T and T % c == 0:
                return c
    return root


def scan_chunked(a: Tensor, b: Tensor, h0: Tensor, reverse: bool = False) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` over dim 1 (from the last step backwards if ``reverse``), no
    autograd. Chunks of ``C`` steps: (1) every chunk from a zero state, all chunks at once, keeping
    only its end state and its gates' product; (2) the true state at each chunk's start, chunk by
    chunk; (3) every chunk again from its true start, writing the states."""
    B, T, H = b.shape
    C = chunk_size(T)
    n = -(-T // C)
    if n * C != T:  # pad with steps that keep the state (a = 1, b = 0): run first when reverse
        a = torch.cat([a, a.new_ones(B, n * C - T, H)], 1)
        b = torch.cat([b, b.new_zeros(B, n * C - T, H)], 1)
    a4, b4 = a.reshape(B, n, C, H), b.reshape(B, n, C, H)
    steps = range(C - 1, -1, -1) if reverse else range(C)
    end = b.new_zeros(B, n, H)  # (1) each chunk's end state from zero, and the product of its a
    product = a.new_ones(B, n, H)
    for c in steps:
        end = torch.addcmul(b4[:, :, c], a4[:, :, c], end)
        product = product * a4[:, :, c]
    start = torch.empty_like(end)  # (2) the true state before each chunk
    state = h0
    for k in range(n - 1, -1, -1) if reverse else range(n):
        start[:, k] = state
        state = torch.addcmul(end[:, k], product[:, k], state)
    h = torch.empty_like(b4)  # (3) each chunk from its true start
    state = start
    for c in steps:
        state = torch.addcmul(b4[:, :, c], a4[:, :, c], state, out=h[:, :, c])
    return h.view(B, n * C, H)[:, :T]


class LinearScan(torch.autograd.Function):
    r""":func:`scan_chunked` with its gradient, itself a scan backwards in time: with
    :math:`\bar g_t = \partial L/\partial h_t` (the total, later steps included),

    .. math::
        \bar g_t = g_t + a_{t+1} \bar g_{t+1}, \quad
        \partial L/\partial b_t = \bar g_t, \quad
        \partial L/\partial a_t = \bar g_t h_{t-1}, \quad
        \partial L/\partial h_0 = a_1 \bar g_1.
    """

    @staticmethod
    def forward(ctx, a, b, h0):
        h = scan_chunked(a, b, h0)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        a_next = torch.empty_like(a)  # a_{t+1}, and 0 after the last step
        a_next[:, :-1] = a[:, 1:]
        a_next[:, -1] = 0
        g = scan_chunked(a_next, grad_h.contiguous(), torch.zeros_like(h0), reverse=True)
        grad_a = torch.empty_like(a)
        torch.mul(g[:, 1:], h[:, :-1], out=grad_a[:, 1:])  # dL/da_t = g_t h_{t-1}
        torch.mul(g[:, 0], h0, out=grad_a[:, 0])
        grad_h0 = a[:, 0] * g[:, 0] if ctx.needs_input_grad[2] else None
        return grad_a, g, grad_h0


def linear_scan(a: Tensor, b: Tensor, h0: Optional[Tensor] = None) -> Tensor:
    """``h_1 .. h_T`` of ``h_t = a_t h_{t-1} + b_t`` (batch first), differentiable (:class:`LinearScan`)."""
    if h0 is None:
        h0 = b.new_zeros(b.shape[0], b.shape[2])
    return LinearScan.apply(a.contiguous(), b.contiguous(), h0.contiguous())
