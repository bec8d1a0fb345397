"""Attention: weights are a distribution over the real slots, padding never matters, hard attention picks a slot."""

from __future__ import annotations

import pytest
import torch

from zoo.attention import (
    AdditiveAttention,
    Attention,
    MultiplicativeAttention,
    attention_entropy,
    hard_attention,
    masked_softmax,
)
from zoo.sequences import lengths_to_mask

B, L, Q, M = 3, 7, 6, 5


def make(score: str) -> Attention:
    torch.manual_seed(0)
    if score == "additive":
        return AdditiveAttention(Q, M, attention_size=8)
    if score == "dot":
        return MultiplicativeAttention(M, M, "dot")
    return MultiplicativeAttention(Q, M, "general")


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_shapes_and_weights_sum_to_one(score: str) -> None:
    att = make(score)
    q = torch.randn(B, att.query_size)
    memory = torch.randn(B, L, M)
    context, weights = att(q, memory)
    assert context.shape == (B, M) and weights.shape == (B, L)
    assert torch.allclose(weights.sum(-1), torch.ones(B))
    assert torch.allclose(context, (weights.unsqueeze(-1) * memory).sum(1), atol=1e-6)
    # the projected memory computed once gives the same result
    context2, weights2 = att(q, memory, projected=att.project(memory))
    assert torch.allclose(weights, weights2) and torch.allclose(context, context2)


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_padding_is_ignored(score: str) -> None:
    att = make(score)
    q = torch.randn(B, att.query_size)
    memory = torch.randn(B, L, M)
    lengths = torch.tensor([7, 4, 1])
    mask = lengths_to_mask(lengths, L)
    context, weights = att(q, memory, mask)
    assert torch.allclose(weights.sum(-1), torch.ones(B))
    assert (weights[~mask] == 0).all()
    # changing the padded slots changes nothing
    noisy = memory.clone()
    noisy[~mask] = torch.randn(int((~mask).sum()), M) * 100
    context2, weights2 = att(q, noisy, mask)
    assert torch.allclose(weights, weights2) and torch.allclose(context, context2, atol=1e-6)
    # and equals attention over the unpadded memory alone
    for b in range(B):
        n = int(lengths[b])
        c, w = att(q[b : b + 1], memory[b : b + 1, :n])
        assert torch.allclose(w[0], weights[b, :n], atol=1e-6)
        assert torch.allclose(c[0], context[b], atol=1e-6)


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_many_queries_at_once_equal_one_at_a_time(score: str) -> None:
    """A decoder's T queries in one call (B, T, Q) give what T calls of (B, Q) give, padding masked."""
    att = make(score)
    T = 4
    queries = torch.randn(B, T, att.query_size)
    memory = torch.randn(B, L, M)
    mask = lengths_to_mask(torch.tensor([7, 4, 1]), L)
    context, weights = att(queries, memory, mask)
    assert context.shape == (B, T, M) and weights.shape == (B, T, L)
    assert torch.allclose(weights.sum(-1), torch.ones(B, T)) and (weights.masked_select(~mask.unsqueeze(1)) == 0).all()
    for t in range(T):
        c, w = att(queries[:, t], memory, mask)
        assert torch.allclose(w, weights[:, t], atol=1e-6) and torch.allclose(c, context[:, t], atol=1e-6)


def test_gradients_never_reach_padding() -> None:
    att = make("additive")
    memory = torch.randn(B, L, M, requires_grad=True)
    mask = lengths_to_mask(torch.tensor([7, 3, 2]), L)
    context, _ = att(torch.randn(B, Q), memory, mask)
    context.sum().backward()
    assert (memory.grad[~mask] == 0).all()
    assert memory.grad[mask].abs().sum() > 0


def test_all_masked_row_gives_zeros_not_nan() -> None:
    weights = masked_softmax(torch.randn(2, 4), torch.tensor([[True, False, True, False], [False] * 4]))
    assert torch.isfinite(weights).all()
    assert weights[1].sum() == 0 and torch.allclose(weights[0].sum(), torch.tensor(1.0))


def test_additive_matches_its_equation() -> None:
    att = make("additive")
    q, memory = torch.randn(B, Q), torch.randn(B, L, M)
    e = att.v(torch.tanh(att.memory_proj(memory) + att.query_proj(q)[:, None])).squeeze(-1)
    assert torch.allclose(att.scores(q, memory), e)
    general = make("general")
    assert torch.allclose(
        general.scores(q, memory), torch.einsum("bq,qm,blm->bl", q, general.memory_proj.weight, memory), atol=1e-5
    )
    dot = MultiplicativeAttention(M, M, "dot", scale=True)
    qm = torch.randn(B, M)
    assert torch.allclose(dot.scores(qm, memory), torch.einsum("bm,blm->bl", qm, memory) / M**0.5, atol=1e-6)


def test_a_bias_is_added_to_the_scores_before_the_softmax_and_padding_stays_zero() -> None:
    att = make("additive")
    q, memory, bias = torch.randn(B, Q), torch.randn(B, L, M), torch.randn(B, L)
    mask = lengths_to_mask(torch.tensor([7, 4, 2]), L)
    context, weights = att(q, memory, mask, bias=bias)
    expected = masked_softmax(att.scores(q, memory) + bias, mask)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.einsum("bl,blm->bm", expected, memory))
    assert not torch.allclose(weights, att(q, memory, mask)[1])  # the bias changed where it looks
    assert (weights[~mask] == 0).all()


def test_bad_configuration_errors() -> None:
    with pytest.raises(ValueError, match="dot attention needs"):
        Attention(4, 5, "dot")
    with pytest.raises(ValueError, match="unknown attention score"):
        Attention(4, 5, "cosine")
    att = make("additive")
    with pytest.raises(ValueError, match="expected query"):
        att(torch.randn(B, 1, 1, Q), torch.randn(B, L, M))
    with pytest.raises(ValueError, match="mask shape"):
        att(torch.randn(B, Q), torch.randn(B, L, M), torch.ones(B, L + 1, dtype=torch.bool))


def test_hard_attention_samples_from_the_weights_and_never_padding() -> None:
    memory = torch.randn(2, 4, 3)
    weights = torch.tensor([[0.7, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    for _ in range(2000):
        context, index, log_prob = hard_attention(weights, memory, generator=g)
        counts[index[0]] += 1
        assert index[1] == 3 and torch.equal(context[1], memory[1, 3])
        assert torch.equal(context[0], memory[0, index[0]])
        assert torch.allclose(log_prob, torch.log(weights[torch.arange(2), index]))
    assert counts[2:].sum() == 0
    assert abs(counts[0] / 2000 - 0.7) < 0.05
    context, index, _ = hard_attention(weights, memory, sample=False)
    assert index.tolist() == [0, 3]


def test_entropy() -> None:
    assert torch.allclose(attention_entropy(torch.full((1, 4), 0.25)), torch.log(torch.tensor([4.0])))
    assert attention_entropy(torch.tensor([[1.0, 0.0]])).item() == 0.0
