"""Streaming inference: a model fed one input at a time, its recurrent state carried between calls.

    h_t = Recurrent(x_t, h_{t-1})       one call of ``Recurrent.forward(x_t[:, None], state=h_{t-1})``

A task declares its streaming step: its ``stream()`` returns a subclass of :class:`Stream` defined in
the task's own module, which holds the carried state and advances a :class:`~zoo.recurrent.Recurrent`
by one step (or by a whole chunk, with the same state carried). The recurrence is the training code's
own, for every cell family and both backends, so a stream's answer after step t equals the
whole-sequence forward over steps 1..t (tests/test_streaming.py, to 1e-5). The zoo's streams:

- ``CharStream`` (:mod:`zoo.tasks.language_model`): ``step(char or ids)`` -> next-character log-probabilities.
- ``LabelStream`` (:mod:`zoo.tasks.classifier`): ``step(token ids)`` -> class probabilities of the prefix
  so far. The pools update in O(1) per token: ``last`` is the current state, ``mean`` a running sum,
  ``max`` a running maximum, ``attention`` an online softmax (running maximum score, weighted sum and
  normaliser, rescaled when the maximum grows: the prefix's exact attention without keeping its states).
- ``FrameStream`` (:mod:`zoo.tasks.frame_classifier`): ``step(frames)`` -> per-frame class probabilities.
- ``DecoderStream`` (:mod:`zoo.tasks.seq2seq`): the encoded source, then ``step(previous tokens)`` ->
  the next token's log-probabilities; the attention weights of the last step in ``attention``.

A bidirectional encoder cannot stream: its backward direction reads each sequence from its end, so
its output at step t depends on inputs that have not arrived. Such models are refused
(:func:`check_streamable`); the translator's encoder may be bidirectional because the whole source is
known before the decoder starts.

A stream puts its model in eval mode (dropout off) and runs without gradients.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

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
