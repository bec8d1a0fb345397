"""Turning next-token distributions into tokens, shared by every generator in the zoo.

- :func:`sample_next`: one token per row (greedy, temperature, top-k); :func:`cap_run` bounds runs of
  a set of tokens (a character model's whitespace) by masking them at the bound.
- :func:`greedy_decode` and :func:`beam_search`: whole sequences from a step function (see
  :data:`StepFn`), batched, with per-step extras (attention weights) kept for every emitted token.
"""

from __future__ import annotations

import dataclasses
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


def cap_run(logits: Tensor, run: int, cap: Optional[int], members: Tensor) -> Tensor:
    """``logits`` ``(..., vocab)`` with the tokens ``members`` masked (``-inf``) once the text ends in a run
    of ``cap`` of them: sampling then draws from the model conditioned on "no run longer than ``cap``",
    the other tokens' probabilities renormalised. ``run``: how many of them end the text now;
    ``cap=None``: no limit. A character model's whitespace is the use: at a low temperature its likeliest
    continuation of a space is another space, and an uncapped sample ends in hundreds of them."""
    if cap is None or run < cap or members.numel() == 0:
        return logits
    return logits.index_fill(-1, members, float("-inf"))


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
# ``b*K .. b*K + K-1``. Anything constant per input (an encoder memory) is best given to beam search
# as its ``context``: it then calls ``step(tokens, state, context)`` with the context's rows of the
# inputs still searching, and the inputs already done leave the batch instead of being computed on.

StepFn = Callable[..., Tuple[Tensor, Any, Dict[str, Tensor]]]  # (tokens, state[, context])


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
    """Apply ``fn`` to every tensor of a nested state (tuples, lists, dicts, dataclasses, None)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(
            state, **{f.name: map_state(getattr(state, f.name), fn) for f in dataclasses.fields(state) if f.init}
        )
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
    max_len: int | Tensor,
    beam_size: int = 5,
    alpha: float = 0.0,
    pad_id: int = 0,
    device: torch.device | str | None = None,
    reorder_state: Optional[Callable[[Any, Tensor], Any]] = None,
    expand_state: bool = True,
    context: Any = None,
    expand_context: bool = True,
    logits: bool = False,
) -> Decoded:
    """Batched beam search: ``beam_size`` hypotheses per input, all B*K advanced by one ``step`` call.

    At each step every live hypothesis is extended by every token; of the 2K best extensions per
    input, those ending in ``eos`` (among the top K) become finished hypotheses scored
    ``log P / lp(len)`` (:func:`length_penalty` with ``alpha``), and the first K others stay live. An
    input is done once it has K finished hypotheses and no live one can still beat the worst of them:
    live scores only fall as they grow, so the bound ``log P / lp(max_len)`` (``log P`` when
    ``alpha = 0``) is exact, and with a beam as wide as the search space the result is the true best
    sequence. At ``max_len`` (an int, or one per input ``(B,)``) the live hypotheses compete with the
    finished ones, so an input whose hypotheses never emit ``eos`` still returns its best
    (``finished = False``).

    ``state`` is given for the B inputs and expanded to B*K rows here (``expand_state=False``: already
    expanded); it is reordered with ``reorder_state(state, index)`` (default :func:`select_state`).
    ``context`` (optional): per-input tensors ``(B, ...)`` that ``step`` reads and never changes (an
    encoder's memory); expanded to K rows per input here and passed as ``step(tokens, state,
    context)``. ``expand_context=False``: passed with one row per input still searching instead, row
    n for the hypotheses in rows ``n*K .. n*K + K-1`` (a step that reads each input's memory once for
    its K hypotheses, rather than K copies of it). With a context, inputs that are done leave the
    batch (their rows of the state and the context are dropped once they are an eighth of it), so a
    batch costs what its inputs need, not what its longest one needs; without one the batch keeps its
    B*K rows to the end.

    Per step the bookkeeping is a fixed number of tensor operations whatever B and K (it is what
    separates one batched call from B single ones): a step records its tokens, their parents and its
    extras, the K best finished hypotheses of each input live in ``(B, K)`` tensors, and the winners'
    tokens and extras are traced back through the parents once, at the end.

    ``logits=True``: ``step`` returns unnormalised logits instead of log-probabilities. The search
    then normalises only what it keeps: each row's 2K best logits minus the row's ``logsumexp``, the
    same numbers as a log-softmax (to float rounding) without writing a log-softmax over the whole
    vocabulary. Faster with ATen's scalar kernels (13.4 ms against 15.5-19.0 ms for 500 rows of 8,000,
    top-k included), slower with the vectorised ones (native: 9.7-13.0 against 7.8-8.8 ms), where the
    step's matrix products dominate anyway (docs/reliability.md, "Batched beam search").
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    B, K = batch_size, beam_size
    max_lens = torch.as_tensor(max_len, device=device).long().expand(B)
    if int(max_lens.min()) < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    reorder = reorder_state or select_state
    if expand_state:
        state = map_state(state, lambda t: t.repeat_interleave(K, 0))
    if expand_context:
        context = map_state(context, lambda t: t.repeat_interleave(K, 0))
    # Only the first hypothesis of each input is live at the start: K copies would fill the beam with
    # K copies of the same extensions.
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    active = torch.arange(B, device=device)  # the inputs in the batch, in its order
    finished, last_live = _Kept.empty(B, K, device), _Kept.empty(B, K, device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    bound = length_penalty(max_lens.double(), alpha)  # the most a live score can still be divided by
    trail = _Trail(B)
    for t in range(int(max_lens.max())):
        log_probs, state, extra = step(tokens, state) if context is None else step(tokens, state, context)
        N, V = active.shape[0], log_probs.shape[-1]
        # The 2K best extensions of an input are among the 2K best tokens of each of its hypotheses
        # (adding a hypothesis's score keeps its tokens' order): take those first, then the best 2K
        # of the K*2K, instead of sorting all K*V.
        width = min(2 * K, V)
        step_scores = log_probs.float()
        row_best, row_token = step_scores.topk(width, dim=-1)  # (N*K, width)
        if logits:  # log p = logit - logsumexp(logits): normalise the kept ones only
            row_best = row_best - torch.logsumexp(step_scores, -1, keepdim=True)
        candidates = (scores.unsqueeze(-1) + row_best.view(N, K, width)).view(N, K * width)
        top_scores, top_index = candidates.topk(min(2 * K, K * width), dim=-1)  # (N, 2K), best first
        origin = torch.div(top_index, width, rounding_mode="floor")  # which hypothesis each extends
        token = row_token.view(N, K * width).gather(1, top_index)
        is_eos = token == eos_id
        searching = ~done[active]
        # Finished hypotheses: eos among the top K candidates with a finite score.
        ends = is_eos[:, :K] & torch.isfinite(top_scores[:, :K]) & searching.unsqueeze(1)
        finished.add(active, ends, top_scores[:, :K], t, token[:, :K], origin[:, :K], alpha)
        # Live hypotheses: the first K non-eos candidates (there are always K: at most K are eos).
        rank = torch.arange(top_scores.shape[1], device=device).expand_as(top_scores).masked_fill(is_eos, top_scores.shape[1])
        keep = rank.argsort(dim=-1, stable=True)[:, :K]  # (N, K) positions among the 2K
        scores = top_scores.gather(1, keep).masked_fill(is_eos.gather(1, keep), float("-inf"))
        parents, chosen = origin.gather(1, keep), token.gather(1, keep)
        trail.record(active, chosen, parents, extra)
        # Done: K finished and no live hypothesis can beat the worst of them; or out of length, where
        # the live hypotheses are kept to compete with the finished ones.
        best_live = scores.max(-1).values.double() / bound[active]
        beaten = finished.full(active) & (best_live <= finished.worst(active))
        expired = searching & ~beaten & (t + 1 >= max_lens[active])
        if bool(expired.any()):
            last_live.add(active, expired.unsqueeze(1) & torch.isfinite(scores), scores, t, chosen, parents, alpha)
        done[active] = ~searching | beaten | expired
        rows = (K * torch.arange(N, device=device).unsqueeze(1) + parents).view(-1)  # each new hypothesis's source row
        still = int((~done[active]).sum())
        if still == 0:
            break
        if context is not None and N - still >= max(1, N // 8):  # drop the inputs that are done
            inputs = (~done[active]).nonzero().squeeze(1)
            rows, scores, chosen, active = rows.view(N, K)[inputs].view(-1), scores[inputs], chosen[inputs], active[inputs]
            context = select_state(
                context, (K * inputs.unsqueeze(1) + torch.arange(K, device=device)).view(-1) if expand_context else inputs
            )
        state = reorder(state, rows)
        tokens = chosen.view(-1)
    # The winner of each input: its best finished or (out of length) live hypothesis; ties go to the
    # finished ones, then to the better ranked (argmax takes the first maximum).
    pool = finished.beside(last_live)
    best = pool.scores.argmax(1, keepdim=True)
    end_step = pool.step.gather(1, best).squeeze(1)
    out, extras = trail.trace_back(
        end_step, pool.token.gather(1, best).squeeze(1), pool.parent.gather(1, best).squeeze(1), K, pad_id
    )
    return Decoded(
        tokens=out,
        lengths=end_step + 1,
        scores=pool.scores.gather(1, best).squeeze(1).float(),
        log_probs=pool.raw.gather(1, best).squeeze(1),
        finished=best.squeeze(1) < K,
        extras=extras,
    )


@dataclass
class _Kept:
    """The K best hypotheses set aside for each of B inputs, best first (ties: the earlier first):
    ``scores`` ``log P / lp(len)`` (float64, as the length penalty divides), ``raw`` log P, and how to
    trace each back: the ``step`` of its last ``token`` and the ``parent`` it extended (its index
    among the hypotheses live before that step)."""

    scores: Tensor
    raw: Tensor
    step: Tensor
    token: Tensor
    parent: Tensor

    @classmethod
    def empty(cls, B: int, K: int, device: torch.device | str | None) -> "_Kept":
        index = lambda: torch.zeros(B, K, dtype=torch.long, device=device)  # noqa: E731
        return cls(
            torch.full((B, K), float("-inf"), dtype=torch.float64, device=device),
            torch.zeros(B, K, device=device),
            index(),
            index(),
            index(),
        )

    def add(self, inputs: Tensor, where: Tensor, raw: Tensor, step: int, token: Tensor, parent: Tensor, alpha: float) -> None:
        """Merge candidates ``(N, K)`` of the inputs ``inputs`` (N,), those ``where`` True, keeping the K best."""
        K = self.scores.shape[1]
        new = (raw.double() / length_penalty(step + 1, alpha)).masked_fill(~where, float("-inf"))
        merged, order = torch.cat([self.scores[inputs], new], 1).sort(dim=1, descending=True, stable=True)
        order = order[:, :K]
        self.scores[inputs] = merged[:, :K]
        for name, value in (("raw", raw), ("step", torch.full_like(token, step)), ("token", token), ("parent", parent)):
            kept = getattr(self, name)
            kept[inputs] = torch.cat([kept[inputs], value], 1).gather(1, order)

    def full(self, inputs: Tensor) -> Tensor:
        return torch.isfinite(self.scores[inputs, -1])

    def worst(self, inputs: Tensor) -> Tensor:
        return self.scores[inputs, -1]

    def beside(self, other: "_Kept") -> "_Kept":
        """Both side by side, ``(B, 2K)``: an index < K is one of ``self``'s."""
        return _Kept(*(torch.cat([getattr(self, f.name), getattr(other, f.name)], 1) for f in dataclasses.fields(self)))


class _Trail:
    """What each step of a beam search chose, to trace the winners back at the end: the live
    ``tokens`` and their ``parents`` ``(N, K)`` (index among the previous step's hypotheses), the
    step's extras ``(N*K, ...)`` in the rows of the previous step's hypotheses, and where each of the
    B inputs was among the step's N (the batch shrinks as inputs finish)."""

    def __init__(self, B: int) -> None:
        self.B = B
        self.tokens: List[Tensor] = []
        self.parents: List[Tensor] = []
        self.extras: List[Dict[str, Tensor]] = []
        self.position: List[Tensor] = []
        self._active: Optional[Tensor] = None

    def record(self, active: Tensor, tokens: Tensor, parents: Tensor, extras: Dict[str, Tensor]) -> None:
        if self._active is not active:  # the batch changed: where is each input now
            self._active = active
            position = torch.zeros(self.B, dtype=torch.long, device=active.device)
            self._position = position.index_copy_(0, active, torch.arange(active.shape[0], device=active.device))
        self.tokens.append(tokens)
        self.parents.append(parents)
        self.extras.append(extras)
        self.position.append(self._position)

    def trace_back(
        self, end_step: Tensor, last_token: Tensor, last_parent: Tensor, K: int, pad_id: int
    ) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Tokens ``(B, T)`` and extras ``(B, T, ...)`` of the hypotheses whose ``last_token`` was
        emitted at ``end_step`` by extending ``last_parent``; padding and zeros after the end."""
        B, T = end_step.shape[0], int(end_step.max()) + 1
        out = torch.full((B, T), pad_id, dtype=torch.long, device=end_step.device)
        extras = {k: v.new_zeros(B, T, *v.shape[1:]) for k, v in self.extras[0].items()}
        following = last_parent  # the hypothesis among step t's that step t + 1 extended
        for t in range(T - 1, -1, -1):
            at_end, inside, row = end_step == t, end_step >= t, self.position[t]
            token = torch.where(at_end, last_token, self.tokens[t][row, following])
            parent = torch.where(at_end, last_parent, self.parents[t][row, following])
            out[:, t] = token.masked_fill(~inside, pad_id)
            for k, v in self.extras[t].items():
                extras[k][:, t] = v[row * K + parent].masked_fill(_rows(~inside, v), 0)
            following = torch.where(inside, parent, following)
        return out, extras
