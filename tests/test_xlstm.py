"""xLSTM (zoo/xlstm.py, zoo/xlstm_scan.py): the sLSTM's and mLSTM's equations as direct loops written
here without the stabiliser, the installed ``xlstm`` package's pure-PyTorch functions with the same
weights (its vanilla sLSTM loop, its parallel, chunkwise and recurrent mLSTM; they run on a CPU), the
chunkwise path at every chunk length with padding and a carried state, float32 gates under autocast,
the heads rule and initialisation, and the properties every modern family shares (tests/family_checks.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.family_checks import *  # noqa: F403  the shared tests, run here for slstm and mlstm
from tests.family_checks import EXACT, make
from zoo import xlstm_scan
from zoo.recurrent import Recurrent
from zoo.sequences import lengths_to_mask, step_loop
from zoo.xlstm import MLSTMCell, SLSTMCell, num_heads

PAPER = dict(atol=1e-10, rtol=1e-10)
PACKAGE = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(params=["slstm", "mlstm"])
def family(request):
    return request.param


def randomised(cell, seed: int = 0):
    """``cell`` in float64 with every parameter drawn anew (biases non-zero, so each one is checked)."""
    torch.manual_seed(seed)
    cell = cell.double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 0.5)
    return cell


def slstm_paper_loop(cell: SLSTMCell, x: torch.Tensor) -> torch.Tensor:
    """Beck et al. (2024), eq. 8-17, unstabilised: i = exp(ĩ), f = σ(f̃), z = tanh(z̃), o = σ(õ),
    c = f c + i z, n = f n + i, h = o c / n; R the block-diagonal matrix of the heads' blocks."""
    H = cell.hidden_size
    R = torch.cat(
        [torch.block_diag(*[block[g * cell.head_size : (g + 1) * cell.head_size] for block in cell.weight_hh]) for g in range(4)]
    )  # (4 H, H): gate g's block-diagonal rows
    h = c = n = torch.zeros(x.shape[0], H, dtype=x.dtype)
    hs = []
    for t in range(x.shape[1]):
        pre = x[:, t] @ cell.weight_ih.T + cell.bias_ih + h @ R.T
        i, f, z, o = (
            torch.exp(pre[:, :H]),
            torch.sigmoid(pre[:, H : 2 * H]),
            torch.tanh(pre[:, 2 * H : 3 * H]),
            torch.sigmoid(pre[:, 3 * H :]),
        )
        c = f * c + i * z
        n = f * n + i
        h = o * c / n
        hs.append(h)
    return torch.stack(hs, 1)


def mlstm_paper_loop(cell: MLSTMCell, x: torch.Tensor) -> torch.Tensor:
    """Eq. 19-27, unstabilised, every head spelled out: q, k / sqrt(d), v, o from x; i = exp(ĩ),
    f = σ(f̃) per head; C = f C + i v kᵀ, n = f n + i k, h = o ⊙ C q / max(|nᵀ q|, 1)."""
    H, K, d = cell.hidden_size, cell.heads, cell.head_size
    W, b = cell.weight_ih, cell.bias_ih
    C = torch.zeros(x.shape[0], K, d, d, dtype=x.dtype)
    n = torch.zeros(x.shape[0], K, d, dtype=x.dtype)
    hs = []
    for t in range(x.shape[1]):
        proj = x[:, t] @ W.T + b
        o = torch.sigmoid(proj[:, 3 * H : 4 * H])
        h = torch.empty(x.shape[0], H, dtype=x.dtype)
        for head in range(K):
            unit = slice(head * d, (head + 1) * d)
            q, k, v = proj[:, unit], proj[:, H:][:, unit] / math.sqrt(d), proj[:, 2 * H :][:, unit]
            i = torch.exp(proj[:, 4 * H + head])[:, None]
            f = torch.sigmoid(proj[:, 4 * H + K + head])[:, None]
            C[:, head] = f[..., None] * C[:, head] + i[..., None] * v[:, :, None] * k[:, None, :]
            n[:, head] = f * n[:, head] + i * k
            denominator = torch.clamp((n[:, head] * q).sum(-1).abs(), min=1.0)
            h[:, unit] = o[:, unit] * (C[:, head] @ q[..., None])[..., 0] / denominator[:, None]
        hs.append(h)
    return torch.stack(hs, 1)


def run_steps(cell, x, state=None, mask=None):
    """The cell's equations step by step (what backend "cells" runs)."""
    state = cell.zero_state(x.shape[0], x) if state is None else state
    out, final, _ = step_loop(cell.step, x.transpose(0, 1), state, mask, False)
    return out, final


@pytest.mark.parametrize("cls,loop", [(SLSTMCell, slstm_paper_loop), (MLSTMCell, mlstm_paper_loop)])
@pytest.mark.parametrize("head_size", [4, 64])  # two heads of 4 (block-diagonal R), one head of the width
def test_cells_equal_the_papers_unstabilised_equations(cls, loop, head_size, monkeypatch):
    monkeypatch.setattr(xlstm_scan, "EPS", 0.0)  # the reference code's epsilon off: the paper's exact form
    cell = randomised(cls(5, 8, head_size=head_size))
    cell.chunk = 3
    assert cell.heads == (2 if head_size == 4 else 1)
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    expected = loop(cell, x)
    torch.testing.assert_close(run_steps(cell, x)[0], expected, **PAPER)
    torch.testing.assert_close(cell.sequence(x, cell.zero_state(3, x))[0], expected, **PAPER)


def test_default_heads_are_of_64_units_through_recurrent():
    rnn = Recurrent(3, 128, "mlstm", backend="native")
    assert rnn.layers[0].l0.heads == 2 and rnn.layers[0].l0.head_size == 64
    assert Recurrent(3, 128, "slstm").layers[0].l0.weight_hh.shape == (2, 256, 64)
    x = torch.randn(2, 5, 3)
    for family in ("slstm", "mlstm"):
        rnn = Recurrent(3, 128, family)
        torch.testing.assert_close(rnn(x, backend="native").output, rnn(x, backend="cells").output, **EXACT)


def test_slstm_equals_the_xlstm_packages_vanilla_loop():
    """xlstm 2.0.6's pure-PyTorch sLSTM (``slstm_forward`` with its ``slstm`` pointwise step: exponential
    input gate, sigmoid forget gate, tanh z) with our weights: same gate order (i, f, z, o), same
    per-head recurrent blocks ``R`` ``(heads, 4 d, d)``."""
    vanilla = pytest.importorskip("xlstm.blocks.slstm.src.vanilla")
    cell = SLSTMCell(6, 16, head_size=8)
    with torch.no_grad():
        cell.bias_ih.normal_()
    x = torch.randn(2, 9, 6)
    states, _, _ = vanilla.slstm_forward(
        F.linear(x, cell.weight_ih).transpose(0, 1),
        torch.zeros(4, 2, 16),
        cell.weight_hh.detach(),
        cell.bias_ih.detach(),
        vanilla.slstm_pointwise_function_registry["slstm"],
    )
    with torch.no_grad():
        out, (h, c, n, m) = cell.sequence(x, cell.zero_state(2, x))
    torch.testing.assert_close(out, states[0, 1:].transpose(0, 1), **PACKAGE)
    for ours, theirs in zip((h, c, n, m), states[:, -1]):
        torch.testing.assert_close(ours, theirs, **PACKAGE)


def package_qkv(cell: MLSTMCell, x: torch.Tensor):
    """Our projections in the package's layout: q, k (unscaled), v ``(B, heads, T, d)``, the gates'
    pre-activations ``(B, heads, T)``, and o."""
    H, K = cell.hidden_size, cell.heads
    proj = F.linear(x, cell.weight_ih, cell.bias_ih)
    q, k, v, o, i_raw, f_raw = proj.split([H, H, H, H, K, K], -1)
    heads = lambda t: t.reshape(*x.shape[:2], K, -1).transpose(1, 2)  # noqa: E731
    return heads(q), heads(k), heads(v), i_raw.transpose(1, 2), f_raw.transpose(1, 2), torch.sigmoid(o)


def test_mlstm_equals_the_xlstm_packages_parallel_chunkwise_and_recurrent_forms():
    """xlstm 2.0.6's ``parallel_stabilized_simple`` (no initial state), ``chunkwise_simple`` (from a
    carried state, its final state) and ``recurrent_step_stabilized_simple``, with our weights. Its
    ``C`` is ours transposed (it stores k vᵀ and reads qᵀ C)."""
    backends = pytest.importorskip("xlstm.blocks.mlstm.backends")
    torch.manual_seed(0)
    cell = MLSTMCell(6, 16, head_size=8)
    cell.chunk = 4
    x = torch.randn(2, 12, 6)
    with torch.no_grad():
        q, k, v, i_raw, f_raw, o = package_qkv(cell, x)
        theirs = o * backends.parallel_stabilized_simple(q, k, v, i_raw[..., None], f_raw[..., None]).transpose(1, 2).reshape(
            2, 12, 16
        )
        ours, _ = cell.sequence(x, cell.zero_state(2, x))
        torch.testing.assert_close(ours, theirs, **PACKAGE)
        torch.testing.assert_close(run_steps(cell, x)[0], theirs, **PACKAGE)

        _, (_, C0, n0, m0) = cell.sequence(x[:, :5], cell.zero_state(2, x))  # a carried state, m != 0
        root_d = math.sqrt(cell.head_size)  # its chunkwise form scales q, not k: its C and n are ours times sqrt(d)
        h_chunks, (C, n, m) = backends.chunkwise_simple(
            q, k, v, i_raw, f_raw, C0.transpose(-1, -2) * root_d, n0 * root_d, m0, chunk_size=4, return_last_state=True
        )
        ours, (_, C_ours, n_ours, m_ours) = cell.sequence(x, (torch.zeros(2, 16), C0, n0, m0))
        torch.testing.assert_close(ours, o * h_chunks.transpose(1, 2).reshape(2, 12, 16), **PACKAGE)
        torch.testing.assert_close(C_ours, C.transpose(-1, -2) / root_d, **PACKAGE)
        torch.testing.assert_close(n_ours, n / root_d, **PACKAGE)
        torch.testing.assert_close(m_ours, m.reshape(2, 2), **PACKAGE)

        step_state = (C0.transpose(-1, -2), n0[..., None], m0[..., None, None])
        for t in range(12):
            h_t, step_state = backends.recurrent_step_stabilized_simple(
                *step_state,
                q[:, :, t : t + 1],
                k[:, :, t : t + 1],
                v[:, :, t : t + 1],
                i_raw[:, :, t, None, None],
                f_raw[:, :, t, None, None],
            )
            torch.testing.assert_close(o[:, t] * h_t.reshape(2, 16), ours[:, t], **PACKAGE)


@pytest.mark.parametrize("chunk", [1, 3, 5, 16, 64])
def test_mlstm_chunkwise_equals_the_steps_with_padding_and_a_carried_state(chunk):
    cell = randomised(MLSTMCell(5, 8, head_size=4))
    x = torch.randn(3, 16, 5, dtype=torch.float64, requires_grad=True)
    mask = lengths_to_mask(torch.tensor([16, 9, 1]))
    with torch.no_grad():  # a carried state, not zeros
        _, start = run_steps(cell, torch.randn(3, 4, 5, dtype=torch.float64))
    cell.chunk = chunk
    results = []
    for run in (run_steps, cell.sequence):
        out, final = run(cell, x, start, mask) if run is run_steps else run(x, start, mask)
        loss = (out * torch.linspace(-1, 1, 8, dtype=torch.float64)).sum() + sum(s.sum() for s in final)
        results.append((out, final, torch.autograd.grad(loss, [x, *cell.parameters()])))
    (steps, steps_final, steps_grads), (chunks, chunks_final, chunks_grads) = results
    torch.testing.assert_close(chunks, steps, **PAPER)
    for a, b in zip(chunks_final, steps_final, strict=True):
        torch.testing.assert_close(a, b, **PAPER)
    for a, b in zip(chunks_grads, steps_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    assert (chunks[1, 9:] == 0).all() and (chunks[2, 1:] == 0).all()


def test_mlstm_chunkwise_carries_the_state_from_chunk_to_chunk():
    """Cut at chunk borders and elsewhere: the pieces, each from the last one's ``(C, n, m)``, equal one run."""
    cell = randomised(MLSTMCell(5, 8))
    cell.chunk = 4
    x = torch.randn(2, 21, 5, dtype=torch.float64)
    whole, whole_state = cell.sequence(x, cell.zero_state(2, x))
    state, pieces = cell.zero_state(2, x), []
    for piece in x.split([8, 3, 10], dim=1):
        out, state = cell.sequence(piece, state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), whole, **PAPER)
    for a, b in zip(state, whole_state, strict=True):
        torch.testing.assert_close(a, b, **PAPER)


def test_padded_steps_of_minus_infinity_give_no_nan_in_values_or_gradients():
    """Whole chunks of padding (``log i = -inf``), a sequence of one step, and a state whose m is large."""
    cell = MLSTMCell(5, 8)
    cell.chunk = 2
    x = torch.randn(2, 9, 5, requires_grad=True)
    state = tuple(
        s.requires_grad_() for s in (torch.zeros(2, 8), torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8), torch.full((2, 1), 50.0))
    )
    out, final = cell.sequence(x, state, lengths_to_mask(torch.tensor([9, 1])))
    grads = torch.autograd.grad(out.sum() + sum(s.sum() for s in final), [x, *state, *cell.parameters()])
    assert torch.isfinite(out).all() and all(torch.isfinite(s).all() for s in final)
    assert all(torch.isfinite(g).all() for g in grads)
    assert 40.0 < final[3][1] < 50.0  # one real step, then padding: m = max(log f + 50, log i), kept


@pytest.mark.parametrize("family", ["slstm", "mlstm"])
def test_gates_and_states_are_float32_under_bfloat16_autocast(family):
    rnn = make(family, num_layers=2)
    x = torch.randn(2, 70, 5)  # more than one chunk
    reference = rnn(x).output
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for backend in ("native", "cells"):
            out = rnn(x, backend=backend)
            assert all(s.dtype == torch.float32 for s in out.state), backend
            torch.testing.assert_close(out.output.float(), reference, atol=0.05, rtol=0.05)


def test_an_empty_slstm_memory_takes_its_first_stabiliser_from_the_input_gate():
    """From the zero state, a very negative input gate must not give n = 0 and h = 0 / 0."""
    cell = SLSTMCell(3, 4)
    with torch.no_grad():
        cell.bias_ih[:4] = -500.0  # log i = -500 at the first step
    (h, c, n, m), _ = cell.step(torch.randn(2, 3), cell.zero_state(2, torch.zeros(0)))
    assert torch.isfinite(h).all()
    torch.testing.assert_close(n, torch.ones(2, 4))
    assert (m < -400).all()


def test_heads_rule_and_initialisation():
    assert (num_heads(128), num_heads(64), num_heads(96), num_heads(8), num_heads(12, head_size=4)) == (2, 1, 1, 1, 3)
    s, m = SLSTMCell(3, 128), MLSTMCell(3, 192)
    assert (s.heads, m.heads, m.head_size) == (2, 3, 64)
    torch.testing.assert_close(s.bias_ih[128:256].detach(), torch.linspace(3, 6, 128))
    torch.testing.assert_close(m.bias_ih[-3:].detach(), torch.tensor([3.0, 4.5, 6.0]))
    assert (s.bias_ih[:128] == -1).all() and (m.bias_ih[768:771] == -1).all()
    assert m.weight_ih.shape == (4 * 192 + 6, 3) and not hasattr(m, "weight_hh")


def test_bad_sizes_are_refused_with_clear_errors():
    with pytest.raises(ValueError, match="head_size must be a positive integer, got 0"):
        SLSTMCell(3, 8, head_size=0)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got -2"):
        MLSTMCell(3, -2)
    with pytest.raises(ValueError, match="input_size must be a positive integer, got 2.5"):
        SLSTMCell(2.5, 8)
    with pytest.raises(ValueError, match="chunk must be a positive number of steps, got 0"):
        xlstm_scan.mlstm_chunkwise(
            *[torch.zeros(1, 1, 2, 4)] * 3,
            torch.zeros(1, 1, 2),
            torch.zeros(1, 1, 2),
            (torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4), torch.zeros(1, 1)),
            chunk=0,
        )
    cell = MLSTMCell(3, 128)
    with pytest.raises(
        ValueError, match=r"expects a state of 4 tensor\(s\) \(2, 128\), \(2, 2, 64, 64\), \(2, 2, 64\), \(2, 2\)"
    ):
        cell.check_inputs(
            torch.zeros(2, 5, 3), (torch.zeros(2, 128), torch.zeros(2, 1, 128, 128), torch.zeros(2, 1, 128), torch.zeros(2, 1))
        )
