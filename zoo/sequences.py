"""Small things every sequence model needs, written once: which steps are real, the top layer's
final state, detached state for truncated BPTT, and eval mode for inference."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Tuple, Union

import torch
from torch import Tensor, nn

State = Union[Tensor, Tuple[Tensor, Tensor]]


def lengths_to_mask(lengths: Optional[Tensor], max_len: Optional[int] = None, batch: Optional[int] = None,
                    device: Optional[torch.device] = None) -> Tensor:
    """``(B,)`` lengths → ``(B, max_len)`` bool mask, True at the real steps. ``lengths=None`` means
    every sequence is full: then ``batch`` and ``max_len`` give the shape (all True)."""
    if lengths is None:
        if batch is None or max_len is None:
            raise ValueError("lengths_to_mask(None) needs batch and max_len")
        return torch.ones(batch, max_len, dtype=torch.bool, device=device)
    lengths = lengths.to(device) if device is not None else lengths
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def hidden_of(state: State) -> Tensor:
    """The hidden part ``h`` of a state: ``h`` itself, or the first of an LSTM's ``(h, c)``."""
    return state[0] if isinstance(state, tuple) else state


def top_state(state: State, num_directions: int) -> Tensor:
    """The top layer's final hidden state of each direction, concatenated: ``(B, D * H)`` from a
    state in torch's layout ``(layers * D, B, H)`` (forward direction first)."""
    h = hidden_of(state)[-num_directions:]  # (D, B, H)
    return h.transpose(0, 1).reshape(h.shape[1], -1)


def map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    """``fn`` applied to the state's tensor, or to each of an LSTM's ``(h, c)``."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def detach_state(state: State) -> State:
    """The same state cut from the graph (truncated BPTT carries it, gradients stop at it)."""
    return map_state(state, Tensor.detach)


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no gradients inside the block; the module's previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
