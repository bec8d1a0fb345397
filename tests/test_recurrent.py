"""Recurrent: padding never leaks, the two backends agree, state goes in and comes out; the LSTM's
gate biases start as ``lstm_init`` says and loaded weights replace them."""

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.recurrent import CHRONO_MAX_STEPS, LSTM_INIT, Recurrent, reverse_padded
from zoo.tasks.base import load_pretrained

CONFIGS = [(cell, layers, bi) for cell in ("rnn", "gru", "lstm") for layers, bi in ((1, False), (2, True))]
ALL_CONFIGS = CONFIGS + [(cell, layers, bi) for cell in ("mingru", "minlstm") for layers, bi in ((1, False), (2, True))]
PRETRAINED_LM = Path(__file__).resolve().parents[1] / "zoo" / "pretrained" / "char_lstm_shakespeare"


def first(state):
    return state[0] if isinstance(state, tuple) else state


def flat(state):
    return torch.cat([s.flatten() for s in state]) if isinstance(state, tuple) else state.flatten()


@pytest.mark.parametrize("cell, layers, bi", CONFIGS)
def test_backends_agree(cell, layers, bi):
    torch.manual_seed(0)
    rnn = Recurrent(4, 6, cell, num_layers=layers, bidirectional=bi)
    x, lengths = torch.randn(3, 8, 4), torch.tensor([8, 5, 1])
    native, cells = rnn(x, lengths), rnn(x, lengths, backend="cells")
    torch.testing.assert_close(native.output, cells.output, atol=1e-5, rtol=0)
    torch.testing.assert_close(flat(native.state), flat(cells.state), atol=1e-5, rtol=0)
    g_native = torch.autograd.grad(native.output.square().sum(), list(rnn.parameters()))
    g_cells = torch.autograd.grad(rnn(x, lengths, backend="cells").output.square().sum(), list(rnn.parameters()))
    for a, b in zip(g_native, g_cells):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["native", "cells"])
@pytest.mark.parametrize("cell, layers, bi", ALL_CONFIGS)
def test_padding_never_changes_the_result(cell, layers, bi, backend):
    torch.manual_seed(0)
    rnn = Recurrent(4, 6, cell, num_layers=layers, bidirectional=bi, backend=backend)
    lengths = torch.tensor([7, 4, 2])
    x = torch.randn(3, 7, 4)
    padded = torch.cat([x, 100 * torch.randn(3, 5, 4)], 1)  # loud garbage after the end
    padded[1, 4:] = 100
    padded[2, 2:] = -100
    a, b = rnn(x, lengths), rnn(padded, lengths)
    torch.testing.assert_close(b.output[:, :7], a.output, atol=1e-6, rtol=0)
    assert b.output[:, 7:].abs().max() == 0
    torch.testing.assert_close(flat(a.state), flat(b.state), atol=1e-6, rtol=0)
    # each sequence alone, unpadded, gives the same answer as inside the padded batch
    for i, n in enumerate(lengths.tolist()):
        alone = rnn(x[i : i + 1, :n])
        torch.testing.assert_close(alone.output[0], a.output[i, :n], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["gru", "lstm", "mingru", "minlstm"])
def test_initial_state_in_final_state_out(cell):
    torch.manual_seed(0)
    rnn = Recurrent(3, 5, cell, num_layers=2)
    x = torch.randn(2, 10, 3)
    whole = rnn(x)
    first_half = rnn(x[:, :6])
    second_half = rnn(x[:, 6:], state=first_half.state)
    torch.testing.assert_close(second_half.output, whole.output[:, 6:], atol=1e-6, rtol=0)
    torch.testing.assert_close(flat(second_half.state), flat(whole.state), atol=1e-6, rtol=0)
    assert first(whole.state).shape == (2, 2, 5)


def test_every_layer_and_gates_returned():
    rnn = Recurrent(3, 5, "lstm", num_layers=3, bidirectional=True, backend="cells")
    out = rnn(torch.randn(2, 4, 3), return_hidden=True, return_gates=True)
    assert [h.shape for h in out.hidden] == [(2, 4, 10)] * 3
    assert set(out.gates[0]) == {"input", "forget", "candidate", "output", "cell"}
    torch.testing.assert_close(out.hidden[-1], out.output)
    with pytest.raises(ValueError, match="backend='cells'"):
        rnn(torch.randn(2, 4, 3), return_gates=True, backend="native")


def test_dropout_only_between_layers_and_only_in_training():
    torch.manual_seed(0)
    rnn = Recurrent(3, 5, "gru", num_layers=2, dropout=0.5).eval()
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(rnn(x).output, rnn(x).output)
    rnn.train()
    assert not torch.allclose(rnn(x).output, rnn(x).output)


def test_reverse_padded():
    x = torch.arange(8.0).view(2, 4)
    assert reverse_padded(x, torch.tensor([4, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        Recurrent(2, 2, backend="cudnn")
    rnn = Recurrent(2, 2)
    with pytest.raises(ValueError, match="length"):
        rnn(torch.randn(2, 3, 2), torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="exceeds"):
        rnn(torch.randn(2, 3, 2), torch.tensor([4, 1]))


def test_lstm_gates_still_returned_without_padding():
    torch.manual_seed(0)
    rnn = Recurrent(3, 5, "lstm", backend="cells")
    x = torch.randn(2, 6, 3)
    plain, with_gates = rnn(x), rnn(x, return_gates=True)
    torch.testing.assert_close(plain.output, with_gates.output, atol=1e-6, rtol=0)
    gates = with_gates.gates[0]
    torch.testing.assert_close(with_gates.output, gates["output"] * torch.tanh(gates["cell"]), atol=1e-6, rtol=0)


def lstm_biases(rnn):
    """Per layer and direction: the total bias ``b_ih + b_hh`` split into gates i, f, g, o."""
    H = rnn.hidden_size
    return [
        (getattr(layer, "bias_ih" + s) + getattr(layer, "bias_hh" + s)).detach().split(H)
        for layer in rnn.layers
        for s in ("_l0", "_l0_reverse")[: rnn.num_directions]
    ]


def test_lstm_init_sets_the_gate_biases_for_both_backends():
    torch.manual_seed(0)
    forget1 = Recurrent(3, 8, "lstm", num_layers=2, bidirectional=True, lstm_init="forget1")
    for i, f, _, _ in lstm_biases(forget1):
        torch.testing.assert_close(f, torch.ones(8))
        assert i.abs().max() <= 2 / 8**0.5  # torch's draw, two uniforms in +-1/sqrt(hidden)
    chrono = Recurrent(3, 8, "lstm", num_layers=2, bidirectional=True, lstm_init="chrono")
    for i, f, _, _ in lstm_biases(chrono):
        assert (f >= 0).all() and (f <= torch.log(torch.tensor(CHRONO_MAX_STEPS - 1.0))).all()
        assert f.std() > 0.5  # a spread of time scales over the units
        torch.testing.assert_close(i, -f)
    after = []
    for init in ("chrono", "torch"):  # chrono draws nothing more than torch's init
        torch.manual_seed(0)
        Recurrent(3, 8, "lstm", lstm_init=init)
        after.append(torch.get_rng_state())
    assert torch.equal(*after)
    torch.manual_seed(1)
    ours = Recurrent(3, 8, "lstm", lstm_init="torch")
    torch.manual_seed(1)
    torchs = torch.nn.LSTM(3, 8, batch_first=True)
    torch.testing.assert_close(ours.layers[0].bias_hh_l0, torchs.bias_hh_l0)  # untouched
    default = lstm_biases(Recurrent(3, 8, "lstm"))[0]
    assert LSTM_INIT == "chrono" and torch.equal(default[0], -default[1])
    # the backends share the parameters: the cells backend sees the same biases
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(forget1(x).output, forget1(x, backend="cells").output, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown lstm_init 'ones'.*'forget1', 'chrono', 'torch'"):
        Recurrent(3, 8, "lstm", lstm_init="ones")


@pytest.mark.skipif(not PRETRAINED_LM.exists(), reason="the shipped char LM is not in this checkout")
def test_loaded_weights_do_not_depend_on_the_initialisation():
    ids = torch.arange(1, 40).view(3, 13)
    logits = [load_pretrained(PRETRAINED_LM, lstm_init=init)(ids)[0] for init in ("torch", "chrono")]
    default = load_pretrained(PRETRAINED_LM)
    assert default.hparams.lstm_init == LSTM_INIT
    torch.testing.assert_close(logits[0], logits[1], atol=0, rtol=0)
    torch.testing.assert_close(default(ids)[0], logits[0], atol=0, rtol=0)


@settings(max_examples=30, deadline=None, derandomize=True)  # derandomized: the same cases on every run and CPU
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    pad=st.integers(0, 3),
    cell=st.sampled_from(["rnn", "gru", "lstm"]),
    bi=st.booleans(),
)
def test_any_batch_gives_each_sequence_what_it_gives_alone(lengths, pad, cell, bi):
    """Property: whatever the lengths, the order and the garbage after each end, a sequence's outputs
    (to its length) and final state in a batch equal those of the sequence run alone."""
    torch.manual_seed(0)
    rnn = Recurrent(3, 4, cell, num_layers=2, bidirectional=bi)
    width = max(lengths) + pad
    x = 100 * torch.randn(len(lengths), width, 3)  # loud garbage after every end
    together = rnn(x, torch.tensor(lengths))
    for b, n in enumerate(lengths):
        alone = rnn(x[b : b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(together.output[b, :n], alone.output[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(first(together.state)[:, b], first(alone.state)[:, 0], atol=1e-5, rtol=1e-5)
