r"""The speed path of S6 (:class:`zoo.ssm.S6Cell`): Mamba's selective scan over a whole sequence,

.. math::
    \bar A_t = \exp(\Delta_t A), \qquad
    h_t = \bar A_t \odot h_{t-1} + (\Delta_t u_t) B_t^\top, \qquad
    y_t = h_t C_t + D \odot u_t,

with ``u``, ``Δ`` ``(batch, time, hidden)``, ``A`` ``(hidden, N)``, ``B``, ``C`` ``(batch, time, N)``
and the state ``h`` ``(batch, hidden, N)``. The recurrence is linear and diagonal in ``h``: over the
flattened ``hidden * N`` state it is ``h_t = a_t h_{t-1} + b_t``, one :func:`zoo.scan.linear_scan`.

Done at once, that scan materialises ``Ā``, ``Δ B u`` and every ``h_t`` -- ``(batch, time, hidden, N)``
each, ``N = 16`` times the size of the layer's outputs -- and autograd keeps them for the backward
(recipes/char_lm_shakespeare_s6.yaml, batch 64, 128 steps, width 704: 369 MB per tensor and layer in
float32). So the time axis is cut into chunks of ``K`` steps with ``batch * K * hidden * N <=
CHUNK_ELEMENTS`` (23 steps in that recipe): each chunk is one ``linear_scan`` from the state the
previous chunk ended in, and only its outputs ``y`` ``(batch, K, hidden)`` and end state leave it.
Under autograd each chunk is checkpointed (:func:`torch.utils.checkpoint.checkpoint`): its backward
reruns its forward, so what is kept between forward and backward is the chunk inputs (``u, Δ, B, C``),
``y`` and one ``(batch, hidden, N)`` start state per chunk; the peak is the few ``(batch, K, hidden, N)``
tensors of the one chunk being run (``CHUNK_ELEMENTS`` elements each, 64 MB in float32). The price is
one more forward per chunk; ``CHUNK_ELEMENTS`` trades memory for fewer, longer chunks (not timed).
Mamba's CUDA kernel avoids the same tensors by keeping ``h`` in SRAM and recomputing it in the backward.

A padded step (``mask`` False) gets ``Δ = 0``: then ``Ā = 1`` and ``Δ B u = 0``, the state stays as it
was, like the step loop's freeze; its output is zero.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from . import scan

CHUNK_ELEMENTS = 2**24  # batch * K * hidden * N per chunk: 64 MB per (batch, K, hidden, N) float32 tensor


def chunk_steps(batch: int, time: int, hidden: int, state: int) -> int:
    """``K``: the most steps with ``batch * K * hidden * state <= CHUNK_ELEMENTS`` (at least 1, at most ``time``)."""
    return max(1, min(time, CHUNK_ELEMENTS // max(1, batch * hidden * state)))


def scan_chunk(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, h0: Tensor) -> Tuple[Tensor, Tensor]:
    """One chunk's ``y`` ``(batch, K, hidden)`` and end state ``(batch, hidden, N)``, from ``h0``."""
    batch, K, H = u.shape
    N = A.shape[-1]
    A_bar = torch.exp(delta.unsqueeze(-1) * A)  # (batch, K, hidden, N)
    Bu = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # Δ_t B_t u_t
    h = scan.linear_scan(A_bar.view(batch, K, H * N), Bu.view(batch, K, H * N), h0.reshape(batch, H * N))
    h = h.view(batch, K, H, N)
    y = (h * C.unsqueeze(2)).sum(-1) + D * u  # elementwise, not a matmul: autocast leaves it in the state's dtype
    return y, h[:, -1]


def selective_scan(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, h0: Tensor, mask: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor]:
    """Every ``y_t`` ``(batch, time, hidden)`` and the final state ``(batch, hidden, N)`` of the
    module's equations, chunk by chunk from ``h0``; ``mask`` ``(batch, time)`` True at real steps."""
    if mask is not None:
        delta = torch.where(mask.unsqueeze(-1), delta, 0.0)
    batch, T, H = u.shape
    K = chunk_steps(batch, T, H, A.shape[-1])
    save_memory = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C, D, h0))
    ys, h = [], h0
    for t0 in range(0, T, K):
        piece = (u[:, t0 : t0 + K], delta[:, t0 : t0 + K], A, B[:, t0 : t0 + K], C[:, t0 : t0 + K], D, h)
        y, h = checkpoint(scan_chunk, *piece, use_reentrant=False) if save_memory else scan_chunk(*piece)
        ys.append(y)
    y = torch.cat(ys, 1) if len(ys) > 1 else ys[0]
    return (y * mask.unsqueeze(-1) if mask is not None else y), h
