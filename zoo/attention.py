"""Attention over a memory: a query asks, every memory slot answers with a score, the softmax of the
scores weighs the slots, and the weighted sum is the context.

    e_i      = score(q, m_i)                      one number per memory slot i = 1..L
    alpha_i  = exp(e_i) / sum_j exp(e_j)          over the real (unmasked) slots only
    context  = sum_i alpha_i m_i

The scores, from the papers:

- additive (Bahdanau, Cho & Bengio 2015; Show, Attend and Tell's f_att):
  ``e_i = v^T tanh(W_q q + W_m m_i + b)``
- multiplicative (Luong, Pham & Manning 2015): ``dot``  ``e_i = q^T m_i`` (query and memory of one
  size) and ``general``  ``e_i = q^T W m_i``.

Soft attention returns the expected context above. Hard attention (Xu et al. 2015) samples one slot
``s ~ Categorical(alpha)`` and returns ``m_s``: :func:`hard_attention`.

One interface for every kind, so a translator (memory = encoder states, mask = source padding) and
a captioner (memory = image feature grid, mask = None) share the code::

    context, weights = attention(query, memory, mask)
    # query (B, Q), memory (B, L, M), mask (B, L) bool, True = a real slot → (B, M), (B, L)

The memory's projection ``W_m m_i`` does not depend on the query: compute it once per sequence with
:meth:`Attention.project` and pass it as ``projected=`` at every decoder step.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

SCORES = ("additive", "dot", "general")


def masked_softmax(scores: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Softmax over the last dimension where ``mask`` is True; masked slots get exactly 0. A row whose
    mask is all False gets all zeros (and a zero context), not NaN."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    if mask.shape != scores.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the scores {tuple(scores.shape)}")
    scores = scores.masked_fill(~mask, float("-inf"))
    # An all-masked row would be softmax(-inf, ..., -inf) = NaN: give it zeros instead.
    empty = ~mask.any(-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1)
    return weights.masked_fill(~mask, 0.0)


class Attention(nn.Module):
    """Soft attention with the score ``additive`` | ``dot`` | ``general``.

    Args:
        query_size: Q, the size of the query (the decoder's hidden state).
        memory_size: M, the size of each memory slot (an encoder state, a feature-grid location).
        score: ``additive`` (Bahdanau), ``dot`` or ``general`` (Luong).
        attention_size: width of the additive score's hidden layer (default ``query_size``).
        scale: divide dot/general scores by ``sqrt(M)`` (as the Transformer does); off by default, as
            in Luong et al.
    """

    def __init__(
        self,
        query_size: int,
        memory_size: int,
        score: str = "additive",
        attention_size: Optional[int] = None,
        scale: bool = False,
    ) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown attention score {score!r}: expected one of {SCORES}")
        if score == "dot" and query_size != memory_size:
            raise ValueError(f"dot attention needs query_size == memory_size (got {query_size} and {memory_size}); use 'general'")
        self.score, self.query_size, self.memory_size, self.scale = score, query_size, memory_size, scale
        if score == "additive":
            attention_size = attention_size or query_size
            self.memory_proj = nn.Linear(memory_size, attention_size)  # W_m m + b
            self.query_proj = nn.Linear(query_size, attention_size, bias=False)  # W_q q
            self.v = nn.Linear(attention_size, 1, bias=False)
        elif score == "general":
            self.memory_proj = nn.Linear(memory_size, query_size, bias=False)  # W m: then e = q . (W m)

    def project(self, memory: Tensor) -> Tensor:
        """The query-independent part of the score, ``(B, L, M)`` → ``(B, L, A)``: compute once per
        memory and pass as ``projected`` to every step."""
        return memory if self.score == "dot" else self.memory_proj(memory)

    def scores(self, query: Tensor, memory: Tensor, projected: Optional[Tensor] = None) -> Tensor:
        """Unnormalised scores ``e``: ``(B, L)`` for one query per row, ``(B, T, L)`` for ``T`` queries
        per row (every step of a decoder at once)."""
        if query.dim() not in (2, 3) or memory.dim() != 3 or query.shape[0] != memory.shape[0]:
            raise ValueError(
                f"expected query (B, Q) or (B, T, Q) and memory (B, L, M); got {tuple(query.shape)} and {tuple(memory.shape)}"
            )
        keys = self.project(memory) if projected is None else projected
        steps = query.dim() == 3
        queries = query if steps else query.unsqueeze(1)  # (B, T, Q)
        if self.score == "additive":
            e = self.v(torch.tanh(keys.unsqueeze(1) + self.query_proj(queries).unsqueeze(2))).squeeze(-1)
        else:
            e = torch.bmm(queries, keys.transpose(1, 2))  # q_t . k_i for every step and slot
            e = e / math.sqrt(keys.shape[-1]) if self.scale else e
        return e if steps else e.squeeze(1)

    def forward(
        self,
        query: Tensor,
        memory: Tensor,
        mask: Optional[Tensor] = None,
        projected: Optional[Tensor] = None,
        bias: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        """``query`` (B, Q), ``memory`` (B, L, M), ``mask`` (B, L) bool with True at real slots (None =
        all real) → ``(context (B, M), weights (B, L))``; weights sum to 1 over the real slots and are
        0 on padding. A query ``(B, T, Q)`` (T steps at once) gives ``(B, T, M)`` and ``(B, T, L)``.
        ``bias``, shaped like the scores, is added to them before the softmax (a score that does not
        come from the memory's content: where a slot is, for instance)."""
        scores = self.scores(query, memory, projected)
        if bias is not None:
            scores = scores + bias
        if mask is not None and scores.dim() == 3:
            mask = mask.unsqueeze(1).expand_as(scores)
        weights = masked_softmax(scores, mask)
        if weights.dim() == 3:
            return torch.bmm(weights, memory), weights
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        return context, weights

    def extra_repr(self) -> str:
        return f"score={self.score!r}, query_size={self.query_size}, memory_size={self.memory_size}"


def AdditiveAttention(query_size: int, memory_size: int, attention_size: Optional[int] = None) -> Attention:
    """Bahdanau attention: ``e_i = v^T tanh(W_q q + W_m m_i + b)``."""
    return Attention(query_size, memory_size, "additive", attention_size)


def MultiplicativeAttention(query_size: int, memory_size: int, score: str = "general", scale: bool = False) -> Attention:
    """Luong attention: ``dot`` ``e_i = q^T m_i`` or ``general`` ``e_i = q^T W m_i``."""
    if score not in ("dot", "general"):
        raise ValueError(f"multiplicative attention is 'dot' or 'general', got {score!r}")
    return Attention(query_size, memory_size, score, scale=scale)


def hard_attention(
    weights: Tensor,
    memory: Tensor,
    sample: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Stochastic "hard" attention (Xu et al. 2015, section 4.1): pick one slot per row.

    ``weights`` (B, L) are the attention probabilities alpha (0 on padding); ``sample=True`` draws
    ``s ~ Categorical(alpha)``, ``sample=False`` takes the most likely slot (for decoding). Returns
    ``(context = memory[b, s_b] (B, M), s (B,), log alpha_s (B,))``; the log-probability carries the
    gradient that REINFORCE needs (the context itself has no gradient path to alpha).
    """
    if sample:
        index = torch.multinomial(weights.float(), 1, generator=generator).squeeze(1)
    else:
        index = weights.argmax(-1)
    context = memory[torch.arange(memory.shape[0], device=memory.device), index]
    log_prob = torch.log(weights.gather(1, index.unsqueeze(1)).squeeze(1).clamp_min(1e-12))
    return context, index, log_prob


def attention_entropy(weights: Tensor) -> Tensor:
    """``H(alpha) = -sum_i alpha_i log alpha_i`` per row ``(B,)`` (0 log 0 = 0)."""
    return -(weights * torch.log(weights.clamp_min(1e-12))).sum(-1)


# ---- training losses of Show, Attend and Tell ------------------------------------------------------
def reinforce_loss(
    log_likelihood: Tensor, log_prob_samples: Tensor, baseline: float | Tensor, weight: Optional[Tensor] = None
) -> Tensor:
    """The REINFORCE surrogate whose gradient is ``-(R - b) d/dW log p(s)`` per sequence, averaged.

    ``log_likelihood`` ``R = log p(y | s, a)`` (B,), treated as a constant reward; ``log_prob_samples``
    ``log p(s | a) = sum_t log alpha_{t, s_t}`` (B,) carries the gradient; ``weight`` (B,) masks the
    sequences that did not sample. Minimising it raises the probability of locations that led to a
    better-than-baseline caption and lowers it for worse ones."""
    advantage = (log_likelihood - baseline).detach()
    terms = -advantage * log_prob_samples
    if weight is not None:
        terms = terms * weight
    return terms.mean()


def doubly_stochastic_penalty(alphas: Tensor, step_mask: Tensor) -> Tensor:
    """``sum_i (1 - sum_t alpha_ti)^2`` per sequence ``(B,)``: ``alphas`` (B, T, L), ``step_mask`` (B, T)
    True on real steps (padding steps do not count)."""
    coverage = (alphas * step_mask.unsqueeze(-1)).sum(1)
    return ((1.0 - coverage) ** 2).sum(-1)


def attention_supervision_loss(weights: Tensor, region: Tensor) -> Tensor:
    """``-log sum_{i in R} alpha_i``, averaged over the rows whose region ``R`` is not empty (0 if none
    is): the attention ``weights`` (B, L) asked to put its mass inside ``region`` (B, L) bool, anywhere
    in it (supervised attention, e.g. Liu et al. 2017, "Attention correctness")."""
    rows = region.any(-1)
    if not rows.any():
        return weights.sum() * 0.0
    inside = (weights[rows] * region[rows]).sum(-1)
    return -torch.log(inside.clamp_min(1e-12)).mean()
