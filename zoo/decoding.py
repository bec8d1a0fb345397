"""Turning next-token distributions into tokens, shared by every generator in the zoo.

- :func:`sample_next`: one token per row (greedy, temperature, top-k).
- :func:`greedy_decode` and :func:`beam_search`: whole sequences from a step function (see
  :data:`StepFn`), batched, with per-step extras (attention weights) kept for every emitted token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Pick one token per row of ``logits`` ``(batch, vocab)``.

    ``temperature == 0`` is greedy (argmax); otherwise sample from ``softmax(logits / temperature)``,
    restricted to the ``top_k`` most likely tokens when given.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# ---- search over whole sequences -------------------------------------------------------------------
# A generator is described by one function, shared by greedy decoding and beam search:
#
#     step(tokens (N,), state) -> (log_probs (N, V), new_state, extras)
#
# ``tokens`` are the previous tokens of N running hypotheses (``bos`` at the first step), ``state``
# whatever the model carries between steps (hidden state, LSTM cell, input feeding ...), ``log_probs``
# the log-softmax over the vocabulary, ``extras`` a dict of per-step tensors ``(N, ...)`` worth keeping
# for each emitted token (attention weights, ...). Every tensor in ``state`` must have N as its first
# dimension (or pass ``reorder_state``); beam search keeps the K hypotheses of input b in rows
# ``b*K .. b*K + K-1``, so anything constant per input (an encoder memory) can stay outside the state,
# expanded once with ``repeat_interleave(K, 0)``.

StepFn = Callable[[Tensor, Any], Tuple[Tensor, Any, Dict[str, Tensor]]]


@dataclass
class Decoded:
    """The result of :func:`greedy_decode` / :func:`beam_search` for a batch of B inputs.

    ``tokens`` (B, T): the chosen sequence, without ``bos``, ending with ``eos`` when it finished,
    padded with ``pad_id``; ``lengths`` (B,): tokens including that ``eos``; ``scores`` (B,): the
    search score (sum of log-probabilities divided by the length penalty); ``log_probs`` (B,): the
    plain sum of log-probabilities; ``finished`` (B,): whether the sequence ended with ``eos`` (False:
    ``max_len`` was reached first and the best unfinished hypothesis is returned); ``extras``: each
    step extra stacked along time, ``(B, T, ...)``, ``extras[k][b, t]`` produced with ``tokens[b, t]``
    (zeros after the end)."""

    tokens: Tensor
    lengths: Tensor
    scores: Tensor
    log_probs: Tensor
    finished: Tensor
    extras: Dict[str, Tensor] = field(default_factory=dict)


def length_penalty(length: Tensor | int, alpha: float) -> Tensor | float:
    """GNMT's length penalty (Wu et al. 2016): ``((5 + |Y|) / 6) ** alpha``; ``alpha = 0`` = none.
    Scores are ``log P(Y) / lp(|Y|)``: a larger alpha favours longer sequences."""
    return ((5.0 + length) / 6.0) ** alpha


def map_state(state: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``fn`` to every tensor of a nested state (tuples, lists, dicts, None)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: map_state(v, fn) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(v, fn) for v in state)
    return state


def select_state(state: Any, index: Tensor) -> Any:
    """Rows ``index`` of every tensor in ``state`` (first dimension = hypotheses)."""
    return map_state(state, lambda t: t.index_select(0, index))


def _stack_extras(steps: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
    if not steps or not steps[0]:
        return {}
    return {k: torch.stack([s[k] for s in steps], 1) for k in steps[0]}


@torch.no_grad()
def greedy_decode(
    step: StepFn,
    state: Any,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    pad_id: int = 0,
    device: torch.device | str | None = None,
) -> Decoded:
    """Take the most likely token at every step until each sequence emits ``eos`` or ``max_len``
    tokens were produced. Finished rows keep running (their outputs are ignored): simpler than
    shrinking the batch, and the batch is small at inference."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    tokens = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    total = torch.zeros(batch_size, device=device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
    out, extras = [], []
    for _ in range(max_len):
        log_probs, state, extra = step(tokens, state)
        best, tokens = log_probs.float().max(-1)
        tokens = tokens.masked_fill(done, pad_id)
        total = total + best.masked_fill(done, 0.0)
        lengths = lengths + (~done).long()
        out.append(tokens)
        extras.append({k: v.masked_fill(_rows(done, v), 0) for k, v in extra.items()})
        done = done | (tokens == eos_id)
        if bool(done.all()):
            break
    return Decoded(torch.stack(out, 1), lengths, total, total, done, _stack_extras(extras))


def _rows(rows: Tensor, like: Tensor) -> Tensor:
    return rows.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: Any,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 5,
    alpha: float = 0.0,
    pad_id: int = 0,
    device: torch.device | str | None = None,
    reorder_state: Optional[Callable[[Any, Tensor], Any]] = None,
    expand_state: bool = True,
) -> Decoded:
    """Batched beam search: ``beam_size`` hypotheses per input, all B*K advanced by one ``step`` call.

    At each step every live hypothesis is extended by every token; of the 2K best extensions per
    input, those ending in ``eos`` (among the top K) become finished hypotheses scored
    ``log P / lp(len)`` (:func:`length_penalty` with ``alpha``), and the first K others stay live. An
    input is done once it has K finished hypotheses and no live one can still beat the worst of them:
    live scores only fall as they grow, so the bound ``log P / lp(max_len)`` (``log P`` when
    ``alpha = 0``) is exact, and with a beam as wide as the search space the result is the true best
    sequence. At ``max_len`` the live hypotheses compete with the finished ones, so an input whose
    hypotheses never emit ``eos`` still returns its best (``finished = False``).

    ``state`` is given for the B inputs and expanded to B*K rows here (``expand_state=False``: already
    expanded); it is reordered with ``reorder_state(state, index)`` (default :func:`select_state`).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    B, K = batch_size, beam_size
    reorder = reorder_state or select_state
    if expand_state:
        state = map_state(state, lambda t: t.repeat_interleave(K, 0))
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    # Only the first hypothesis of each input is live at the start: K copies would fill the beam with
    # K copies of the same extensions.
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    history = torch.zeros(B * K, 0, dtype=torch.long, device=device)
    extra_history: Dict[str, Tensor] = {}
    finished: List[List[Tuple[float, float, Tensor, Dict[str, Tensor]]]] = [[] for _ in range(B)]
    done = [False] * B
    offsets = (torch.arange(B, device=device) * K).unsqueeze(1)  # (B, 1) first row of each input

    def worst_kept(b: int) -> float:
        return min(f[0] for f in sorted(finished[b], key=lambda f: -f[0])[:K])

    for t in range(max_len):
        log_probs, state, extra = step(tokens, state)
        V = log_probs.shape[-1]
        log_probs = log_probs.float().view(B, K, V)
        candidates = (scores.unsqueeze(-1) + log_probs).view(B, K * V)
        top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=-1)  # (B, 2K)
        origin = torch.div(top_index, V, rounding_mode="floor")  # which hypothesis each extends
        token = top_index % V
        length = t + 1
        # Append this step's extras to each hypothesis's history (rows in the current order).
        step_extra = {k: v.unsqueeze(1) for k, v in extra.items()}
        is_eos = token == eos_id
        # Finished hypotheses: eos among the top K candidates with a finite score.
        eos_rows = (is_eos[:, :K] & torch.isfinite(top_scores[:, :K])).nonzero().tolist()
        for b, j in eos_rows:
            if done[b]:
                continue
            row = int(offsets[b, 0] + origin[b, j])
            seq = torch.cat([history[row], token.new_tensor([eos_id])])
            ex = {k: torch.cat([extra_history[k][row], step_extra[k][row]], 0) if k in extra_history else step_extra[k][row] for k in step_extra}
            raw = float(top_scores[b, j])
            finished[b].append((raw / length_penalty(length, alpha), raw, seq, ex))
        # Live hypotheses: the first K non-eos candidates (there are always K: at most K are eos).
        live_rank = torch.where(is_eos, torch.full_like(top_scores, float("inf")), torch.arange(top_scores.shape[1], device=device, dtype=top_scores.dtype))
        keep = live_rank.argsort(dim=-1, stable=True)[:, :K]  # (B, K) positions among the 2K
        new_scores = top_scores.gather(1, keep)
        new_scores = new_scores.masked_fill(is_eos.gather(1, keep), float("-inf"))
        rows = (offsets + origin.gather(1, keep)).view(-1)  # (B*K,) source row of each new hypothesis
        tokens = token.gather(1, keep).view(-1)
        history = torch.cat([history.index_select(0, rows), tokens.unsqueeze(1)], 1)
        extra_history = {
            k: torch.cat([extra_history[k].index_select(0, rows), v.index_select(0, rows)], 1) if k in extra_history else v.index_select(0, rows)
            for k, v in step_extra.items()
        }
        state = reorder(state, rows)
        scores = new_scores
        # Which inputs are done: K finished and no live hypothesis can still beat them.
        best_live = scores.max(-1).values / length_penalty(max_len, alpha) if alpha > 0 else scores.max(-1).values
        for b in range(B):
            if not done[b] and len(finished[b]) >= K and float(best_live[b]) <= worst_kept(b):
                done[b] = True
        if all(done):
            break
    # At the end, live hypotheses (unfinished) compete with the finished ones.
    results = []
    final_len = history.shape[1]
    for b in range(B):
        pool = list(finished[b])
        if not done[b]:
            for k in range(K):
                raw = float(scores[b, k])
                if raw == float("-inf"):
                    continue
                row = b * K + k
                pool.append((raw / length_penalty(final_len, alpha), raw, history[row], {key: v[row] for key, v in extra_history.items()}, False))
        best = max(pool, key=lambda f: f[0])
        results.append(best if len(best) == 5 else (*best, True))
    T = max(len(r[2]) for r in results)
    out = torch.full((B, T), pad_id, dtype=torch.long, device=device)
    extras: Dict[str, Tensor] = {}
    for b, (_, _, seq, ex, _) in enumerate(results):
        out[b, : len(seq)] = seq
        for k, v in ex.items():
            if k not in extras:
                extras[k] = v.new_zeros(B, T, *v.shape[1:])
            extras[k][b, : len(v)] = v
    return Decoded(
        tokens=out,
        lengths=torch.tensor([len(r[2]) for r in results], device=device),
        scores=torch.tensor([r[0] for r in results], device=device),
        log_probs=torch.tensor([r[1] for r in results], device=device),
        finished=torch.tensor([r[4] for r in results], device=device),
        extras=extras,
    )
