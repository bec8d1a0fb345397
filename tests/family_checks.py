"""The properties every modern family (zoo.cells.SequenceCell) must have, written once. A family's
test file defines the ``family`` fixture (its ``cell:`` name, :func:`family_fixture`) and imports these
tests (``__all__``), so that ``pytest -k <family>`` selects them:

- its step (backend "cells") equals its speed path (backend "native") in outputs, final state and
  gradients, deep and bidirectional, with padding;
- the state carried across chunks equals one long run, on both backends;
- a padded batch equals each sequence run alone;
- outputs and gradients are finite at T = 8,192, and for large inputs;
- a wrong input size, state or backend is refused with a message naming what was expected.
"""

from __future__ import annotations

import pytest
import torch

from zoo.recurrent import Recurrent
from zoo.sequences import map_state

EXACT = dict(atol=1e-5, rtol=1e-5)
INPUT, HIDDEN = 5, 8
__all__ = [  # what a family's test file takes with `from tests.family_checks import *`: the shared tests
    "test_step_equals_sequence",
    "test_carried_state_equals_one_run",
    "test_padded_batch_equals_each_sequence_alone",
    "test_gradients_finite_at_8192_steps",
    "test_large_inputs_give_finite_gradients_on_both_backends",
    "test_wrong_input_state_and_backend_are_refused",
]


def family_fixture(name: str):
    """The ``family`` fixture of a family's test file: ``family = family_fixture("s6")``."""
    return pytest.fixture(name="family")(lambda: name)


def make(family: str, seed: int = 0, **options) -> Recurrent:
    torch.manual_seed(seed)
    return Recurrent(INPUT, HIDDEN, family, **options)


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def assert_states_close(a, b) -> None:
    for x, y in zip(as_tuple(a), as_tuple(b), strict=True):
        torch.testing.assert_close(x, y, **EXACT)


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (3, False), (2, True)])
def test_step_equals_sequence(family, layers, bidirectional):
    rnn = make(family, num_layers=layers, bidirectional=bidirectional)
    x = torch.randn(3, 37, INPUT, requires_grad=True)
    lengths = torch.tensor([37, 20, 1])
    results = {}
    for backend in ("native", "cells"):
        out = rnn(x, lengths=lengths, backend=backend)
        weights = torch.randn_like(out.output, generator=torch.Generator().manual_seed(1))
        loss = (out.output * weights).sum() + sum(s.sum() for s in as_tuple(out.state))
        results[backend] = out, torch.autograd.grad(loss, [x, *rnn.parameters()])
    (native, native_grads), (cells, cells_grads) = results["native"], results["cells"]
    torch.testing.assert_close(native.output, cells.output, **EXACT)
    assert_states_close(native.state, cells.state)
    assert (native.output[1, 20:] == 0).all() and (native.output[2, 1:] == 0).all()  # padded steps are zero
    for a, b in zip(native_grads, cells_grads, strict=True):
        torch.testing.assert_close(a, b, **EXACT)


@pytest.mark.parametrize("backend", ["native", "cells"])
def test_carried_state_equals_one_run(family, backend):
    rnn = make(family, num_layers=2, backend=backend)
    x = torch.randn(2, 30, INPUT)
    whole = rnn(x)
    state, outs = None, []
    for piece in x.split([7, 1, 12, 10], dim=1):  # chunks of several sizes, one of a single step
        out = rnn(piece, state=state)
        state = out.state
        outs.append(out.output)
    torch.testing.assert_close(torch.cat(outs, 1), whole.output, **EXACT)
    assert_states_close(state, whole.state)


@pytest.mark.parametrize("backend", ["native", "cells"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(family, backend, bidirectional):
    rnn = make(family, num_layers=2, bidirectional=bidirectional, backend=backend)
    lengths = [9, 4, 6]
    sequences = [torch.randn(n, INPUT, generator=torch.Generator().manual_seed(n)) for n in lengths]
    batch = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=7.0)  # padding that would show
    out = rnn(batch, lengths=torch.tensor(lengths))
    for i, (seq, n) in enumerate(zip(sequences, lengths)):
        alone = rnn(seq[None])
        torch.testing.assert_close(out.output[i, :n], alone.output[0], **EXACT)
        assert_states_close(map_state(out.state, lambda s, i=i: s[:, i]), map_state(alone.state, lambda s: s[:, 0]))


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_gradients_finite_at_8192_steps(family, scale):
    rnn = make(family)
    x = (torch.randn(2, 8192, INPUT, generator=torch.Generator().manual_seed(3)) * scale).requires_grad_()
    out = rnn(x)
    loss = out.output.square().mean() + sum(s.square().mean() for s in as_tuple(out.state))
    grads = torch.autograd.grad(loss, [x, *rnn.parameters()])
    assert torch.isfinite(out.output).all()
    for (name, _), grad in zip([("x", x), *rnn.named_parameters()], grads):
        assert torch.isfinite(grad).all(), f"{name}'s gradient is not finite at scale {scale}"


@pytest.mark.parametrize("layers,scale", [(1, 1000.0), (2, 100.0)])
def test_large_inputs_give_finite_gradients_on_both_backends(family, layers, scale):
    """Saturated gates (``sigmoid`` at exactly 0 or 1 in float32) must not turn a gradient into NaN.
    Two layers at 100, not 1000: S6 has no normalisation and its output grows with about the cube
    of its input's scale, so a second layer overflows float32 at 1000 (zoo/ssm.py says so)."""
    rnn = make(family, num_layers=layers)
    x = (torch.randn(2, 50, INPUT, generator=torch.Generator().manual_seed(4)) * scale).requires_grad_()
    for backend in ("native", "cells"):
        out = rnn(x, backend=backend)
        assert torch.isfinite(out.output).all(), backend
        grads = torch.autograd.grad(out.output.tanh().sum(), [x, *rnn.parameters()])
        assert all(torch.isfinite(g).all() for g in grads), backend


def test_wrong_input_state_and_backend_are_refused(family):
    rnn = make(family, num_layers=2)
    x = torch.randn(3, 4, INPUT)
    with pytest.raises(ValueError, match=rf"expects inputs of size {INPUT}, got \(3, 4, {INPUT + 1}\)"):
        rnn(torch.randn(3, 4, INPUT + 1))
    good = rnn(x).state
    wrong_size = map_state(good, lambda s: s[..., :-1])
    with pytest.raises(ValueError, match=r"expects a state of .* per layer and direction .*got"):
        rnn(x, state=wrong_size)
    other_family = (torch.zeros(2, 3, HIDDEN), torch.zeros(2, 3, HIDDEN), torch.zeros(2, 3, HIDDEN))
    with pytest.raises(ValueError, match=r"expects a state of .*\(3, 8\).*got \(3, 8\), \(3, 8\), \(3, 8\)"):
        rnn(x, state=other_family)
    with pytest.raises(ValueError, match=rf"unknown backend 'fast' for cell '{family}': it supports 'native'"):
        rnn(x, backend="fast")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        Recurrent(INPUT, 0, family)
