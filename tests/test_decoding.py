"""Greedy decoding and batched beam search on small hand-made models whose best sequence is known."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from zoo.decoding import beam_search, greedy_decode, length_penalty, sample_next

PAD, BOS, EOS = 0, 1, 2
V = 5  # tokens 3 and 4 are the "words"
WORDS = (3, 4)


class TableModel:
    """A language model given by a table: the next-token distribution depends on the whole prefix,
    drawn at random (seeded) for every prefix, so greedy and beam search disagree in places. The state
    is the prefix itself, one row per hypothesis (tensor, first dim = rows)."""

    def __init__(self, seed: int, max_len: int, batch: int = 1, eos_bias: float = 0.0) -> None:
        self.seed, self.max_len, self.eos_bias = seed, max_len, eos_bias
        self.calls = 0

    def dist(self, b: int, prefix: tuple) -> torch.Tensor:
        g = torch.Generator().manual_seed(hash((self.seed, b, prefix)) % (2**31))
        logits = torch.randn(V, generator=g) * 2
        logits[EOS] += self.eos_bias
        logits[PAD] = logits[BOS] = float("-inf")
        return torch.log_softmax(logits, -1)

    def initial(self, batch: int):
        # state: (rows, max_len + 1) prefix tokens (-1 = empty) and the input index of each row
        return (torch.full((batch, self.max_len + 1), -1, dtype=torch.long), torch.arange(batch))

    def step(self, tokens, state):
        self.calls += 1
        prefix, which = state
        prefix = prefix.clone()
        rows = []
        for r in range(len(tokens)):
            filled = int((prefix[r] >= 0).sum())
            if int(tokens[r]) != BOS or filled > 0:
                prefix[r, filled] = tokens[r]
            p = tuple(int(x) for x in prefix[r] if x >= 0)
            rows.append(self.dist(int(which[r]), p))
        last = torch.tensor([float(t) for t in tokens]).unsqueeze(1)  # the input token as an "extra"
        return torch.stack(rows), (prefix, which), {"prev": last, "two": last.repeat(1, 2)}

    def brute_force(self, b: int, max_len: int, alpha: float = 0.0):
        """Best (score, tokens) over every sequence: words then eos, or max_len words unfinished."""
        best = (-math.inf, None)
        for n in range(max_len + 1):
            for words in itertools.product(WORDS, repeat=n):
                logp = 0.0
                for i, w in enumerate(words):
                    logp += float(self.dist(b, tuple(words[:i]))[w])
                if n < max_len:  # finish with eos
                    logp += float(self.dist(b, tuple(words))[EOS])
                    seq, length = (*words, EOS), n + 1
                else:
                    seq, length = words, n
                score = logp / length_penalty(length, alpha)
                if score > best[0]:
                    best = (score, seq)
        return best


def run_beam(model: TableModel, batch: int, beam: int, max_len: int, alpha: float = 0.0):
    return beam_search(model.step, model.initial(batch), batch, BOS, EOS, max_len, beam_size=beam, alpha=alpha, pad_id=PAD)


def as_seq(decoded, b):
    return tuple(int(x) for x in decoded.tokens[b, : int(decoded.lengths[b])])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_wide_beam_finds_the_exact_best_sequence(seed: int, alpha: float) -> None:
    max_len, batch = 4, 3
    model = TableModel(seed, max_len)
    out = run_beam(model, batch, beam=2**max_len, max_len=max_len, alpha=alpha)
    for b in range(batch):
        score, seq = model.brute_force(b, max_len, alpha)
        assert as_seq(out, b) == seq
        assert float(out.scores[b]) == pytest.approx(score, abs=1e-4)
        assert bool(out.finished[b]) == (seq[-1] == EOS)


def test_beam_beats_greedy_where_greedy_is_wrong() -> None:
    # A hand-made model: greedy takes "a" (0.6) but every continuation of "a" is poor; "b" (0.4)
    # continues with eos at 0.9, so "b eos" (0.36) beats the best "a ..." (0.6 * 0.5 = 0.30).
    table = {
        (): {3: 0.6, 4: 0.4},
        (3,): {EOS: 0.5, 3: 0.25, 4: 0.25},
        (4,): {EOS: 0.9, 3: 0.05, 4: 0.05},
    }

    def step(tokens, prefix):
        rows, new = [], []
        for t, p in zip(tokens.tolist(), prefix):
            p = p if t == BOS else (*p, t)
            probs = torch.full((V,), 1e-9)
            for k, v in table.get(p, {EOS: 1.0}).items():
                probs[k] = v
            rows.append(probs.log())
            new.append(p)
        return torch.stack(rows), new, {}

    def reorder(state, index):
        return [state[i] for i in index.tolist()]

    greedy = greedy_decode(step, [()], 1, BOS, EOS, 5)
    beam = beam_search(step, [(), ()], 1, BOS, EOS, 5, beam_size=2, reorder_state=reorder, expand_state=False)
    assert greedy.tokens[0, : int(greedy.lengths[0])].tolist() == [3, EOS]
    assert beam.tokens[0, : int(beam.lengths[0])].tolist() == [4, EOS]
    assert float(beam.log_probs[0]) == pytest.approx(math.log(0.36), abs=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_beam_of_one_equals_greedy(seed: int) -> None:
    max_len, batch = 6, 4
    model = TableModel(seed, max_len, eos_bias=-1.0)
    greedy = greedy_decode(model.step, model.initial(batch), batch, BOS, EOS, max_len, pad_id=PAD)
    beam = run_beam(model, batch, beam=1, max_len=max_len)
    assert torch.equal(greedy.lengths, beam.lengths)
    for b in range(batch):
        assert as_seq(greedy, b) == as_seq(beam, b)
    assert torch.allclose(greedy.log_probs, beam.log_probs, atol=1e-5)
    assert torch.equal(greedy.finished, beam.finished)
    T = int(greedy.lengths.max())
    assert torch.allclose(greedy.extras["prev"][:, :T], beam.extras["prev"][:, :T])


def test_a_beam_that_never_ends_returns_its_best_hypothesis() -> None:
    max_len, batch = 5, 2
    model = TableModel(3, max_len, eos_bias=-50.0)  # eos is practically impossible
    out = run_beam(model, batch, beam=3, max_len=max_len)
    assert not out.finished.any()
    assert out.lengths.tolist() == [max_len] * batch
    assert (out.tokens != EOS).all() and (out.tokens != PAD).all()
    assert torch.isfinite(out.scores).all()
    greedy = greedy_decode(model.step, model.initial(batch), batch, BOS, EOS, max_len)
    assert not greedy.finished.any() and greedy.lengths.tolist() == [max_len] * batch
    assert (out.log_probs >= greedy.log_probs - 1e-5).all()  # the beam is at least as good as greedy


def test_extras_line_up_with_the_tokens_they_produced() -> None:
    max_len, batch = 6, 3
    model = TableModel(11, max_len)
    for out in (run_beam(model, batch, 4, max_len), greedy_decode(model.step, model.initial(batch), batch, BOS, EOS, max_len)):
        assert out.extras["prev"].shape == (batch, out.tokens.shape[1], 1)
        assert out.extras["two"].shape == (batch, out.tokens.shape[1], 2)
        for b in range(batch):
            n = int(out.lengths[b])
            prev = out.extras["prev"][b, :n, 0].tolist()
            assert prev == [float(BOS)] + [float(t) for t in out.tokens[b, : n - 1]]
            assert (out.extras["prev"][b, n:] == 0).all()
            assert (out.tokens[b, n:] == PAD).all()


def test_beam_scores_are_sorted_and_length_penalty_favours_long() -> None:
    max_len, batch = 6, 4
    model = TableModel(5, max_len)
    short = run_beam(model, batch, 4, max_len, alpha=0.0)
    long = run_beam(model, batch, 4, max_len, alpha=2.0)
    assert long.lengths.float().mean() >= short.lengths.float().mean()
    assert (short.log_probs >= long.log_probs - 1e-5).all()  # alpha=0 maximises log P itself


@pytest.mark.parametrize("seed", range(2))
def test_a_context_read_once_per_input_equals_a_copy_per_hypothesis(seed: int) -> None:
    batch, beam = 9, 3
    max_lens = torch.tensor([3 + (seed + b) % 4 for b in range(batch)])
    model = TableModel(seed, int(max_lens.max()), eos_bias=0.5)
    prefix, which = model.initial(batch)
    rows = []  # (hypotheses, context rows) of every step given the context once per input

    def per_hypothesis(tokens, prefix, which):
        log_probs, (prefix, _), extras = model.step(tokens, (prefix, which))
        return log_probs, prefix, extras

    def per_input(tokens, prefix, which):
        rows.append((tokens.shape[0], which.shape[0]))
        return per_hypothesis(tokens, prefix, which.repeat_interleave(beam, 0))

    copied = beam_search(per_hypothesis, prefix, batch, BOS, EOS, max_lens, beam_size=beam, alpha=0.7, pad_id=PAD, context=which)
    once = beam_search(
        per_input, prefix, batch, BOS, EOS, max_lens, beam_size=beam, alpha=0.7, pad_id=PAD, context=which, expand_context=False
    )
    assert all(n == beam * m for n, m in rows) and rows[0][1] == batch and rows[-1][1] < batch  # inputs left the batch
    for name in ("tokens", "lengths", "scores", "log_probs", "finished"):
        assert torch.equal(getattr(copied, name), getattr(once, name)), name
    assert all(torch.equal(copied.extras[k], once.extras[k]) for k in ("prev", "two"))


@pytest.mark.parametrize("seed", range(3))
def test_logits_normalised_by_the_search_equal_log_probabilities(seed: int) -> None:
    """A step that returns logits (log-probabilities shifted by any amount per row) with
    ``logits=True`` gives the search of the normalised step: the same sequences, scores to 1e-5."""
    batch, beam, max_len = 4, 3, 5
    model = TableModel(seed, max_len, eos_bias=0.3)
    shift = torch.Generator().manual_seed(seed)

    def shifted(tokens, state):
        log_probs, state, extras = model.step(tokens, state)
        return log_probs + 10 * torch.randn(len(tokens), 1, generator=shift), state, extras

    plain = run_beam(model, batch, beam, max_len, alpha=0.7)
    normalised = beam_search(
        shifted, model.initial(batch), batch, BOS, EOS, max_len, beam_size=beam, alpha=0.7, pad_id=PAD, logits=True
    )
    assert torch.equal(plain.tokens, normalised.tokens) and torch.equal(plain.lengths, normalised.lengths)
    torch.testing.assert_close(normalised.scores, plain.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised.log_probs, plain.log_probs, atol=1e-5, rtol=0)
    unnormalised = beam_search(shifted, model.initial(batch), batch, BOS, EOS, max_len, beam_size=beam, alpha=0.7, pad_id=PAD)
    assert not torch.allclose(unnormalised.scores, plain.scores, atol=1e-3)  # the shifts do matter without it


def test_bad_arguments() -> None:
    model = TableModel(0, 3)
    with pytest.raises(ValueError, match="beam_size"):
        run_beam(model, 1, 0, 3)
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(model.step, model.initial(1), 1, BOS, EOS, 0)


def test_sample_next_unchanged() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    assert int(sample_next(logits, 0)) == 1
    torch.manual_seed(0)
    assert int(sample_next(logits, 1.0, top_k=1)) == 1


def reference_beam(model: TableModel, batch: int, beam: int, max_lens: list, alpha: float):
    """Beam search written plainly, one input at a time, one hypothesis at a time (what beam_search
    computed before its bookkeeping became tensors): (score, tokens, finished) per input."""
    results = []
    for b in range(batch):
        live = [(0.0, ())]  # (log P, tokens)
        finished = []  # (score, log P, tokens)
        for t in range(max_lens[b]):
            candidates = []
            for k, (logp, seq) in enumerate(live):
                dist = model.dist(b, seq)
                candidates += [(logp + float(dist[v]), k, v) for v in range(V) if math.isfinite(float(dist[v]))]
            candidates.sort(key=lambda c: -c[0])  # stable: ties keep hypothesis, then token order
            top = candidates[: 2 * beam]
            finished += [(s / length_penalty(t + 1, alpha), s, (*live[k][1], v)) for s, k, v in top[:beam] if v == EOS]
            live = [(s, (*live[k][1], v)) for s, k, v in top if v != EOS][:beam]
            kept = sorted(finished, key=lambda f: -f[0])[:beam]
            bound = max(s for s, _ in live) / (length_penalty(max_lens[b], alpha) if alpha > 0 else 1.0)
            if len(kept) == beam and bound <= kept[-1][0]:
                break
        else:
            finished += [(s / length_penalty(max_lens[b], alpha), s, seq + ("live",)) for s, seq in live]
        score, _, seq = max(finished, key=lambda f: f[0])
        results.append((score, tuple(x for x in seq if x != "live"), seq[-1] != "live"))
    return results


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("beam,alpha", [(2, 0.0), (3, 0.7), (5, 1.0)])
def test_tensor_bookkeeping_equals_the_plain_search_with_and_without_shrinking(seed: int, beam: int, alpha: float) -> None:
    batch = 9
    max_lens = [3 + (seed + b) % 4 for b in range(batch)]  # one max_len per input
    model = TableModel(seed, max(max_lens), eos_bias=0.5)
    expected = reference_beam(model, batch, beam, max_lens, alpha)
    prefix, which = model.initial(batch)

    def step(tokens, prefix, which):
        log_probs, (prefix, _), extras = model.step(tokens, (prefix, which))
        return log_probs, prefix, extras

    plain = beam_search(
        model.step, (prefix, which), batch, BOS, EOS, torch.tensor(max_lens), beam_size=beam, alpha=alpha, pad_id=PAD
    )
    shrinking = beam_search(
        step, prefix, batch, BOS, EOS, torch.tensor(max_lens), beam_size=beam, alpha=alpha, pad_id=PAD, context=which
    )
    for out in (plain, shrinking):
        for b, (score, seq, finished) in enumerate(expected):
            assert as_seq(out, b) == seq
            assert float(out.scores[b]) == pytest.approx(score, abs=1e-4)
            assert bool(out.finished[b]) == finished
            n = int(out.lengths[b])
            assert out.extras["prev"][b, :n, 0].tolist() == [float(BOS)] + [float(x) for x in seq[:-1]]
    assert torch.equal(plain.tokens, shrinking.tokens) and torch.equal(plain.extras["two"], shrinking.extras["two"])
