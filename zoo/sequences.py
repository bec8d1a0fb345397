"""Small things every sequence model needs, written once: which steps are real, the top layer's
final state, detached state for truncated BPTT, and eval mode for inference."""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

import torch
from torch import Tensor, nn

State = Union[Tensor, Tuple[Tensor, ...]]  # h; an LSTM's (h, c); a modern family's tuple, h first
Gates = Dict[str, Tensor]
# step(x_t, state) -> (new state, gates): one time step (after the input projection, for the classic cells)
Step = Callable[[Tensor, State], Tuple[State, Gates]]


def lengths_to_mask(
    lengths: Optional[Tensor], max_len: Optional[int] = None, batch: Optional[int] = None, device: Optional[torch.device] = None
) -> Tensor:
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
    """The hidden part ``h`` of a state: ``h`` itself, or the first of a tuple (an LSTM's ``(h, c)``)."""
    return state[0] if isinstance(state, tuple) else state


def top_state(state: State, num_directions: int) -> Tensor:
    """The top layer's final hidden state of each direction, concatenated: ``(B, D * H)`` from a
    state in torch's layout ``(layers * D, B, H)`` (forward direction first)."""
    h = hidden_of(state)[-num_directions:]  # (D, B, H)
    return h.transpose(0, 1).reshape(h.shape[1], -1)


def map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    """``fn`` applied to the state's tensor, or to each tensor of a tuple state."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def keep_finished(keep: Tensor, new: State, old: State) -> State:
    """``new`` where ``keep`` ``(batch,)`` is True, ``old`` elsewhere, for every tensor of a state
    (whatever its trailing shape): a finished sequence keeps the state of its last real step."""

    def pick(n: Tensor, o: Tensor) -> Tensor:
        return torch.where(keep.view(-1, *[1] * (n.dim() - 1)), n, o)

    return tuple(map(pick, new, old)) if isinstance(new, tuple) else pick(new, old)


def step_loop(step: Step, x_proj: Tensor, h0: State, mask: Optional[Tensor], keep_gates: bool) -> Tuple[Tensor, State, Gates]:
    """Runs ``step`` over the time-major inputs ``x_proj``; ``mask`` ``(batch, time)`` is True at
    real steps: a finished sequence keeps its last state and its outputs are zero. Returns the
    outputs and gates batch first, and the final state."""
    keep = mask.t().unbind(0) if mask is not None else None  # per step, (batch,)
    state, outs, gates = h0, [], []
    # unbind (not x_proj[t]): backward then assembles x_proj's gradient once, not once per step
    for t, x_t in enumerate(x_proj.unbind(0)):
        new, g = step(x_t, state)
        state = keep_finished(keep[t], new, state) if keep is not None else new
        outs.append(hidden_of(state))
        if keep_gates:
            gates.append(g)
    out = torch.stack(outs, 1)
    if mask is not None:
        out = out * mask.unsqueeze(-1)
    gate_seq = {k: torch.stack([g[k] for g in gates], 1) for k in gates[0]} if keep_gates else {}
    return out, state, gate_seq


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
