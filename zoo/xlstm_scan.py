r"""The mLSTM's speed path (Beck et al. 2024, xLSTM, section 2.3 and appendix): every step of

.. math::
    m_t &= \max(\log f_t + m_{t-1},\ \log i_t) \\
    C_t &= e^{\log f_t + m_{t-1} - m_t}\, C_{t-1} + e^{\log i_t - m_t}\, v_t k_t^\top, \qquad
    n_t  = e^{\log f_t + m_{t-1} - m_t}\, n_{t-1} + e^{\log i_t - m_t}\, k_t \\
    \tilde h_t &= C_t q_t \,/\, \max(|n_t^\top q_t|,\ e^{-m_t})

at once, **chunkwise-parallel**: the time axis is cut into chunks of ``L`` steps. With
:math:`b_t = \sum_{r \le t} \log f_r` the cumulative log forget gate inside a chunk and
:math:`(C_0, n_0, m_0)` the state carried into it,

.. math::
    D_{ts} &= b_t - b_s + \log i_s \quad (s \le t), \qquad
    m_t = \max(b_t + m_0,\ \max_{s \le t} D_{ts}) \\
    C_t q_t &= e^{b_t + m_0 - m_t}\, C_0 q_t + \sum_{s \le t} e^{D_{ts} - m_t}\, (k_s^\top q_t)\, v_s

(and :math:`n_t^\top q_t` alike): inside a chunk an attention-like ``(L, L)`` product; across chunks
only the carried ``(C, n, m)``, one update per chunk. The ``m_t`` here is the recurrent stabiliser
itself (unrolled), so both paths divide by the same numbers. Nothing of size ``(batch, time, heads,
d, d)`` is formed: the largest tensors are ``(batch, heads, time / L, L, L)`` and the chunks' start
states ``(batch, heads, time / L, d, d)``.

A padded step has ``log f = 0`` and ``log i = -inf`` (``i = 0``): the state passes it unchanged.
``-inf`` only ever meets a finite stabiliser (``m`` is never ``-inf``: it starts finite and
``b_t + m_0`` bounds it from below), so no ``-inf - (-inf)`` and no NaN, in values or gradients.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK = 64  # L, the steps of one chunk
EPS = 1e-6  # added to the denominator, as the reference code does (xlstm's backends.py)
MAX_LOG_FLOOR = 80.0  # e^{-m} is taken at -m <= 80: beyond it h ~ e^{-80}, and e^{-m} would overflow float32


def readout(num: Tensor, nq: Tensor, m: Tensor) -> Tensor:
    r""":math:`\tilde h = C q / \max(|n^\top q|, e^{-m})`, the stabilised form of
    :math:`\tilde C q / \max(|\tilde n^\top q|, 1)`: ``num`` ``(..., d)`` is ``C q``, ``nq`` and ``m``
    ``(...)``. The floor ``e^{-m}`` is capped at ``e^{80}`` (:data:`MAX_LOG_FLOOR`): an uncapped
    one overflows float32 for ``m < -88`` and its gradient becomes ``inf * 0 = NaN``."""
    floor = torch.exp(torch.clamp(-m, max=MAX_LOG_FLOOR))
    return num / (torch.maximum(nq.abs(), floor) + EPS).unsqueeze(-1)


def mlstm_chunkwise(
    q: Tensor, k: Tensor, v: Tensor, log_i: Tensor, log_f: Tensor, state: Tuple[Tensor, Tensor, Tensor], chunk: int = CHUNK
) -> Tuple[Tensor, Tuple[Tensor, Tensor, Tensor]]:
    r"""Every :math:`\tilde h_t` (before the output gate) and the final ``(C, n, m)``.

    ``q``, ``k`` (already scaled by :math:`1/\sqrt d`), ``v``: ``(B, heads, T, d)``; ``log_i``,
    ``log_f``: ``(B, heads, T)`` (padded steps ``-inf`` and ``0``); ``state``: ``C`` ``(B, heads, d, d)``,
    ``n`` ``(B, heads, d)``, ``m`` ``(B, heads)``. Returns ``(B, heads, T, d)`` and the state after step T."""
    if chunk < 1:
        raise ValueError(f"mlstm_chunkwise: chunk must be a positive number of steps, got {chunk!r}")
    B, K, T, d = q.shape
    L = min(chunk, T)
    N = -(-T // L)
    if N * L != T:  # pad to whole chunks with steps that keep the state (log f = 0, log i = -inf)
        pad = N * L - T
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        log_i = F.pad(log_i, (0, pad), value=float("-inf"))
        log_f = F.pad(log_f, (0, pad), value=0.0)
    q, k, v = (t.reshape(B, K, N, L, d) for t in (q, k, v))
    log_i, log_f = log_i.reshape(B, K, N, L), log_f.reshape(B, K, N, L)
    b = torch.cumsum(log_f, dim=-1)  # b_t, (B, K, N, L)

    # across chunks: the state carried into each chunk, one update per chunk
    C, n, m = state
    starts = []
    to_end = b[..., -1:] - b + log_i  # b_L - b_s + log i_s: each step's log weight in the chunk's end state
    for c in range(N):
        starts.append((C, n, m))
        m_new = torch.maximum(b[..., c, -1] + m, to_end[..., c, :].amax(-1))
        decay = torch.exp(b[..., c, -1] + m - m_new)  # <= 1
        w = torch.exp(to_end[..., c, :] - m_new.unsqueeze(-1))  # (B, K, L), 0 at padded steps
        C = decay[..., None, None] * C + torch.einsum("bkl,bkli,bklj->bkij", w, v[:, :, c], k[:, :, c])
        n = decay[..., None] * n + torch.einsum("bkl,bklj->bkj", w, k[:, :, c])
        m = m_new
    C0, n0, m0 = (torch.stack(parts, 2) for parts in zip(*starts))  # (B, K, N, ...)

    # inside chunks: the (L, L) form, every chunk at once
    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    D = torch.where(causal, b.unsqueeze(-1) - b.unsqueeze(-2) + log_i.unsqueeze(-2), float("-inf"))  # D[t, s]
    from_start = b + m0.unsqueeze(-1)  # b_t + m_0
    m_t = torch.maximum(from_start, D.amax(-1))  # the recurrent stabiliser at every step
    S = (q @ k.transpose(-1, -2)) * torch.exp(D - m_t.unsqueeze(-1))  # (k_s . q_t) e^{D_ts - m_t}
    inter = torch.exp(from_start - m_t)  # e^{b_t + m_0 - m_t}
    num = S @ v + inter.unsqueeze(-1) * torch.einsum("bknij,bknlj->bknli", C0, q)
    nq = S.sum(-1) + inter * torch.einsum("bknj,bknlj->bknl", n0, q)
    h = readout(num, nq, m_t).reshape(B, K, N * L, d)[:, :, :T]
    return h, (C, n, m)
