"""Streaming inference: a model fed one input at a time, its recurrent state carried between calls.

    h_t = Recurrent(x_t, h_{t-1})       one call of ``Recurrent.forward(x_t[:, None], state=h_{t-1})``

Every task's ``stream()`` returns one of the streams below; they share :class:`Stream`, which holds the
carried state and advances a :class:`~zoo.recurrent.Recurrent` by one step (or by a whole chunk, with
the same state carried). The recurrence is the training code's own, for every cell family and both
backends, so a stream's answer after step t equals the whole-sequence forward over steps 1..t
(tests/test_streaming.py, to 1e-5).

- :class:`CharStream` (char LM): ``step(char or ids)`` -> next-character log-probabilities.
- :class:`LabelStream` (classifier): ``step(token ids)`` -> class probabilities of the prefix so far.
  The pools update in O(1) per token: ``last`` is the current state, ``mean`` a running sum, ``max``
  a running maximum, ``attention`` an online softmax (running maximum score, weighted sum and
  normaliser, rescaled when the maximum grows: the prefix's exact attention without keeping its states).
- :class:`FrameStream` (frame classifier): ``step(frames)`` -> per-frame class probabilities.
- :class:`DecoderStream` (translator): the encoded source, then ``step(previous tokens)`` -> the next
  token's log-probabilities; the attention weights of the last step in ``attention``.

A bidirectional encoder cannot stream: its backward direction reads each sequence from its end, so
its output at step t depends on inputs that have not arrived. Such models are refused
(:func:`check_streamable`); the translator's encoder may be bidirectional because the whole source is
known before the decoder starts.

A stream puts its model in eval mode (dropout off) and runs without gradients.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.tokenizers import encode_chars
from zoo.recurrent import Recurrent
from zoo.sequences import State


def check_streamable(rnn: Optional[Recurrent], what: str) -> None:
    """Refuse a bidirectional recurrence, saying why."""
    if rnn is not None and rnn.bidirectional:
        raise ValueError(
            f"this {what} is bidirectional and cannot stream: its backward direction reads each sequence from "
            "its last step, so the output at step t depends on inputs that have not arrived yet. Stream a "
            "unidirectional model, or call predict on the whole sequence"
        )


class Stream:
    """The state carried between calls, and the one step every stream takes through a Recurrent."""

    def __init__(self, model: nn.Module, rnn: Optional[Recurrent], state: Optional[State] = None) -> None:
        model.eval()
        self.model, self.rnn, self.state = model, rnn, state
        self.steps = 0

    def reset(self, state: Optional[State] = None) -> None:
        """Start a new sequence (zero state, or ``state`` in torch's layout)."""
        self.state, self.steps = state, 0

    @torch.no_grad()
    def advance(self, x: Tensor) -> Tensor:
        """Feed ``x`` ``(batch, input_size)`` (one step) or ``(batch, time, input_size)`` (a chunk, the
        state carried through it) to the recurrence; returns the top layer's output for each step fed,
        ``(batch, directions * hidden)`` or ``(batch, time, directions * hidden)``."""
        one = x.dim() == 2
        out = self.rnn(x[:, None] if one else x, state=self.state)
        self.state = out.state
        self.steps += 1 if one else x.shape[1]
        return out.output[:, 0] if one else out.output


def as_ids(tokens: Any, device: torch.device) -> Tensor:
    """An int, a sequence of ints or a tensor -> a ``(batch,)`` long tensor on ``device``."""
    ids = torch.as_tensor(tokens, dtype=torch.long, device=device)
    return ids.view(1) if ids.dim() == 0 else ids


class CharStream(Stream):
    """A character LM read and written one character at a time (``model``: a ``CharLanguageModel``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, model.rnn)
        self.vocab: List[str] = model.vocab

    @torch.no_grad()
    def step(self, chars: str | Sequence[int] | Tensor) -> Tensor:
        """One character per row (a 1-character string for batch 1, or ids ``(batch,)``) -> the
        log-probabilities of the next character, ``(batch, vocab)``."""
        if isinstance(chars, str):
            if len(chars) != 1:
                raise ValueError(f"step takes one character, got {len(chars)} ({chars[:20]!r}); use read for a text")
            chars = encode_chars(chars, self.vocab)
        ids = as_ids(chars, self.model.head.weight.device)
        return F.log_softmax(self.model.head(self.advance(self.model.inputs(ids))).float(), -1)

    @torch.no_grad()
    def read(self, text: str | Tensor) -> Tensor:
        """Feed a whole text (or ids ``(batch, time)``) at once, the state carried: the log-probabilities
        after each character, ``(time, vocab)`` for a text, ``(batch, time, vocab)`` for ids."""
        ids = encode_chars(text, self.vocab)[None] if isinstance(text, str) else text
        if ids.shape[-1] == 0:
            raise ValueError("read needs at least one character")
        out = self.advance(self.model.inputs(ids.to(self.model.head.weight.device)))
        log_probs = F.log_softmax(self.model.head(out).float(), -1)
        return log_probs[0] if isinstance(text, str) else log_probs


class LabelStream(Stream):
    """A running label over a token stream (``model``: a unidirectional ``SequenceClassifier``)."""

    def __init__(self, model: nn.Module) -> None:
        check_streamable(model.rnn, "classifier")
        super().__init__(model, model.rnn)
        self.pools: List[str] = model.hparams.pool.split("+")
        self.total = self.maximum = None  # mean's running sum, max's running maximum
        self.score_max = self.weighted = self.normaliser = None  # attention's online softmax

    def reset(self, state: Optional[State] = None) -> None:
        super().reset(state)
        self.total = self.maximum = self.score_max = self.weighted = self.normaliser = None

    def _attend(self, h: Tensor) -> Tensor:
        """Online softmax: with m = max_t e_t, the prefix's ``sum_t exp(e_t - m) h_t / sum_t exp(e_t - m)``."""
        pool = self.model.attention
        e = pool.score(torch.tanh(pool.proj(h)))  # (B, 1)
        if self.score_max is None:
            self.score_max, self.weighted, self.normaliser = e, h, torch.ones_like(e)
        else:
            m = torch.maximum(self.score_max, e)
            old, new = torch.exp(self.score_max - m), torch.exp(e - m)
            self.weighted = self.weighted * old + h * new
            self.normaliser = self.normaliser * old + new
            self.score_max = m
        return self.weighted / self.normaliser

    @torch.no_grad()
    def step(self, tokens: int | Sequence[int] | Tensor) -> Tensor:
        """One token id per row ``(batch,)`` -> class probabilities ``(batch, classes)`` of each prefix."""
        model = self.model
        h = self.advance(model.embed(as_ids(tokens, model.head.weight.device)))
        self.total = h if self.total is None else self.total + h
        self.maximum = h if self.maximum is None else torch.maximum(self.maximum, h)
        parts = []
        for pool in self.pools:
            if pool == "last":  # unidirectional: the top layer's state is its output
                parts.append(h)
            elif pool == "mean":
                parts.append(self.total / self.steps)
            elif pool == "max":
                parts.append(self.maximum)
            else:
                parts.append(self._attend(h))
        return torch.softmax(model.head(torch.cat(parts, -1)).float(), -1)

    def read(self, text: str) -> Tensor:
        """Tokenize a chunk of text (no truncation: a stream has no end to cut at) and step through its
        tokens: ``(tokens, classes)``, the probabilities after each (batch 1)."""
        ids = self.model.tokenizer.encode(text).ids
        if not ids:
            raise ValueError(f"no tokens in {text[:40]!r}")
        return torch.cat([self.step(i) for i in ids])


class FrameStream(Stream):
    """Frames labelled as they arrive (``model``: a unidirectional ``FrameClassifier``): per frame the
    backbone, one recurrent step and the head. With ``target: clip`` each step gives the clip label of
    the frames so far."""

    def __init__(self, model: nn.Module) -> None:
        check_streamable(model.rnn, "frame classifier")
        super().__init__(model, model.rnn)
        self.total: Optional[Tensor] = None  # the baseline's running sum (recurrent: false, target: clip)

    def reset(self, state: Optional[State] = None) -> None:
        super().reset(state)
        self.total = None

    @torch.no_grad()
    def step(self, frames: Tensor) -> Tensor:
        """One frame per row, ``(batch, 3, H, W)`` (uint8 or float 0-1) or features ``(batch, F)`` ->
        class probabilities ``(batch, classes)``."""
        model = self.model
        features = model.frame_features(frames.to(model.head.weight.device)[:, None])[:, 0]
        if self.rnn is not None:
            hidden = self.advance(features)
        else:
            hidden = model.mlp(features)
            self.steps += 1
            if model.hparams.target == "clip":
                self.total = hidden if self.total is None else self.total + hidden
                hidden = self.total / self.steps
        return torch.softmax(model.head(hidden).float(), -1)


class DecoderStream(Stream):
    """A translator's decoder one token at a time over an encoded source (``model``: a ``Seq2Seq``;
    ``src`` ``(batch, S)`` ids, ``src_lengths`` ``(batch,)``). Call :meth:`step` with ``<bos>`` first."""

    def __init__(self, model: nn.Module, src: Tensor, src_lengths: Tensor) -> None:
        super().__init__(model, model.decoder)
        with torch.no_grad():
            self.encoded = model.encode(src, src_lengths)
            self.state = model.initial_state(self.encoded)
        self.attention: Optional[Tensor] = None

    @torch.no_grad()
    def step(self, previous: int | Sequence[int] | Tensor) -> Tensor:
        """The previous token per row ``(batch,)`` -> the next token's log-probabilities ``(batch, V)``."""
        ids = as_ids(previous, self.encoded.memory.device)
        logits, self.state, self.attention = self.model.decode_step(ids, self.state, self.encoded)
        self.steps += 1
        return torch.log_softmax(logits.float(), -1)

