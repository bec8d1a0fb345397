"""Recurrent(residual=True): the pre-norm residual block of Griffin and Mamba around every layer,

    u = RMSNorm(x_l);  x_{l+1} = x_l + layer(u) (matching widths, else layer(u));  y = RMSNorm_out(x_L)

checked against those equations written out, for every family and both backends, with padding,
carried state (streaming), export's scan and the gradient tools; and a character LM that takes it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.export import scan_forward
from zoo.families import CELLS
from zoo.gradients import gradient_through_time
from zoo.recurrent import BACKENDS, Recurrent
from zoo.tasks.language_model import CharLanguageModel

FAMILIES = sorted(CELLS)
EXACT = dict(atol=1e-5, rtol=1e-5)


def rms_norm(x, weight, eps):
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def make(cell, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    rnn = Recurrent(5, 6, cell, num_layers=3, bidirectional=bidirectional, residual=True).eval()
    with torch.no_grad():  # norms away from their initial ones, so that a missing norm shows
        for norm in [*rnn.norms, rnn.out_norm]:
            norm.weight.uniform_(0.5, 1.5)
    return rnn


@pytest.mark.parametrize("cell", FAMILIES)
def test_the_block_is_its_equations(cell):
    rnn = make(cell)
    x = torch.randn(2, 7, 5)
    plain = Recurrent(5, 6, cell, num_layers=1)  # runs one stored layer by itself
    value = x
    for index, layer in enumerate(rnn.layers):
        plain.layers[0] = layer
        norm = rnn.norms[index]
        out = plain(rms_norm(value, norm.weight, norm.eps)).output
        value = value + out if value.shape[-1] == out.shape[-1] else out  # layer 0 widens 5 -> 6: no sum
    expected = rms_norm(value, rnn.out_norm.weight, rnn.out_norm.eps)
    torch.testing.assert_close(rnn(x).output, expected, **EXACT)


@pytest.mark.parametrize("cell", FAMILIES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_backends_agree_and_padding_never_touches_the_result(cell, bidirectional):
    rnn = make(cell, bidirectional)
    x, lengths = torch.randn(3, 6, 5), torch.tensor([6, 4, 1])
    outs = {backend: rnn(x, lengths, backend=backend) for backend in BACKENDS}
    torch.testing.assert_close(outs["native"].output, outs["cells"].output, **EXACT)
    noisy = x.clone()
    noisy[1, 4:], noisy[2, 1:] = 1e3, -1e3  # whatever sits in the padding
    out = rnn(noisy, lengths)
    torch.testing.assert_close(out.output, outs["native"].output, **EXACT)
    assert out.output[1, 4:].abs().max() == 0 and out.output[2, 1:].abs().max() == 0
    alone = rnn(x[1:2, :4]).output  # the padded row is what it is alone
    torch.testing.assert_close(out.output[1:2, :4], alone, **EXACT)


@pytest.mark.parametrize("cell", FAMILIES)
def test_state_carried_across_chunks_equals_one_run(cell):
    rnn = make(cell)
    x = torch.randn(2, 9, 5)
    whole = rnn(x)
    first = rnn(x[:, :4])
    second = rnn(x[:, 4:], state=first.state)
    torch.testing.assert_close(torch.cat([first.output, second.output], 1), whole.output, **EXACT)


@pytest.mark.parametrize("cell", ["lstm", "rglru"])
def test_exports_scan_runs_the_same_block(cell):
    rnn = make(cell)
    x, lengths = torch.randn(3, 6, 5), torch.tensor([6, 3, 2])
    torch.testing.assert_close(scan_forward(rnn, x, lengths).output, rnn(x, lengths).output, **EXACT)


def test_gradients_through_time_flow_through_the_block():
    rnn = make("gru")
    x = torch.randn(1, 12, 5)
    layers = gradient_through_time(rnn, x, lambda h: h[:, -1].sum())
    assert len(layers) == 3
    # every layer's state at the first step gets a gradient through the skip paths too
    assert all(float(entry["hidden"][0, 0]) > 0 for entry in layers)


def test_a_char_lm_takes_it_and_streams_like_the_whole_sequence():
    vocab = ["<unk>"] + list("abcdefgh \n")
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=vocab, cell="rglru", hidden_size=12, embedding_dim=6, num_layers=3, residual=True).eval()
    assert model.rnn.residual and len(model.rnn.norms) == 3
    text = "abc defgh\nhag bead"
    ids = torch.tensor([[vocab.index(c) for c in text]])
    whole = F.log_softmax(model(ids)[0][0], -1)
    stream = model.stream()
    torch.testing.assert_close(torch.cat([stream.step(c) for c in text]), whole, **EXACT)
    plain = CharLanguageModel(vocab=vocab, cell="rglru", hidden_size=12, embedding_dim=6, num_layers=3)
    assert not plain.rnn.residual and not hasattr(plain.rnn, "norms")  # off by default: shipped models load as before
