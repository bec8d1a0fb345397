"""S6 (zoo/ssm.py, zoo/selective_scan.py): Mamba's equations as a direct loop written here, mambapy's
selective scan with the same weights, the initialisation, the chunked speed path, and the properties
every modern family shares (tests/family_checks.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.family_checks import *  # noqa: F403  the shared tests, run here for s6
from tests.family_checks import EXACT, family_fixture, make
from zoo import selective_scan
from zoo.ssm import S6Cell

family = family_fixture("s6")


def paper_loop(cell: S6Cell, x: torch.Tensor) -> torch.Tensor:
    """Algorithm 2 of Gu & Dao (2023) step by step, every unit d and state index n spelled out as
    indices: Δ, B, C from the input, A = -exp(A_log), Ā = exp(Δ A), B̄ u = Δ B u, y = C h + D u."""
    batch, T, _ = x.shape
    H, N, R = cell.hidden_size, cell.state_size, cell.dt_rank
    W_down, W_B, W_C = cell.weight_dbc[:R], cell.weight_dbc[R : R + N], cell.weight_dbc[R + N :]
    A = -torch.exp(cell.A_log)
    h = torch.zeros(batch, H, N, dtype=x.dtype)
    ys = []
    for t in range(T):
        u = x[:, t] @ cell.weight_u.T + cell.bias_u
        delta = F.softplus((u @ W_down.T) @ cell.weight_dt.T + cell.bias_dt)  # (batch, H)
        B, C = u @ W_B.T, u @ W_C.T  # (batch, N)
        y = torch.empty(batch, H, dtype=x.dtype)
        for d in range(H):
            A_bar = torch.exp(delta[:, d, None] * A[d])  # (batch, N)
            h[:, d] = A_bar * h[:, d] + delta[:, d, None] * B * u[:, d, None]
            y[:, d] = (C * h[:, d]).sum(-1) + cell.D[d] * u[:, d]
        ys.append(y)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("backend", ["native", "cells"])
def test_s6_equals_the_papers_equations(backend):
    torch.manual_seed(0)
    rnn = make("s6", backend=backend).double()
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    torch.testing.assert_close(rnn(x).output, paper_loop(rnn.layers[0].l0, x), atol=1e-10, rtol=1e-10)


def test_s6_initialisation_is_mambas():
    cell = S6Cell(4, 40)
    assert cell.state_size == 16 and cell.dt_rank == math.ceil(40 / 16) == 3
    dt = F.softplus(cell.bias_dt.detach())
    assert dt.min() >= 0.001 and dt.max() <= 0.1
    assert dt.min() < 0.0015 and dt.max() > 0.09  # spread over the whole range, log-uniformly
    torch.testing.assert_close(dt.log().diff(), torch.full((39,), math.log(100) / 40), atol=1e-5, rtol=0)
    torch.testing.assert_close(-torch.exp(cell.A_log.detach()), -torch.arange(1.0, 17).expand(40, 16))  # S4D-real
    assert (cell.D == 1).all()
    assert S6Cell(4, 40, bias=False).bias_u is None


def test_s6_chunked_scan_equals_one_chunk(monkeypatch):
    """The speed path cut into chunks (checkpointed under autograd) equals it in one piece, values and gradients."""
    rnn = make("s6", num_layers=2)
    x = torch.randn(3, 40, 5, requires_grad=True)
    lengths = torch.tensor([40, 23, 5])

    def run():
        out = rnn(x, lengths=lengths)
        return out, torch.autograd.grad(out.output.square().sum() + out.state[1].sum(), [x, *rnn.parameters()])

    assert selective_scan.chunk_steps(3, 40, 8, 16) == 40
    whole, whole_grads = run()
    monkeypatch.setattr(selective_scan, "CHUNK_ELEMENTS", 3 * 8 * 16 * 7)  # 7 steps a chunk: 6 chunks, the last short
    assert selective_scan.chunk_steps(3, 40, 8, 16) == 7
    chunked, chunked_grads = run()
    torch.testing.assert_close(chunked.output, whole.output, **EXACT)
    for a, b in zip((*chunked.state, *chunked_grads), (*whole.state, *whole_grads), strict=True):
        torch.testing.assert_close(a, b, **EXACT)


def test_s6_state_is_the_output_then_the_ssm_state():
    rnn = make("s6", num_layers=2, bidirectional=True)
    out = rnn(torch.randn(3, 6, 5))
    y, h = out.state
    assert y.shape == (4, 3, 8) and h.shape == (4, 3, 8, 16)
    torch.testing.assert_close(y[2], out.output[:, -1, :8])  # the top layer's forward y is its last output


def test_s6_returns_its_step_sizes_as_gates():
    rnn = make("s6", backend="cells")
    out = rnn(torch.randn(2, 4, 5), return_gates=True)
    delta = out.gates[0]["delta"]
    assert delta.shape == (2, 4, 8) and (delta > 0).all()


def copy_into_mambapy(cell: S6Cell):
    """A mambapy MambaBlock whose S6 (``ssm``) holds the cell's weights (its in_proj, conv and gate are not used)."""
    mamba = pytest.importorskip("mambapy.mamba")
    config = mamba.MambaConfig(
        d_model=cell.hidden_size, n_layers=1, dt_rank=cell.dt_rank, d_state=cell.state_size, expand_factor=1
    )
    block = mamba.MambaBlock(config)
    with torch.no_grad():
        block.x_proj.weight.copy_(cell.weight_dbc)
        block.dt_proj.weight.copy_(cell.weight_dt)
        block.dt_proj.bias.copy_(cell.bias_dt)
        block.A_log.copy_(cell.A_log)
        block.D.copy_(cell.D)
    return block


@pytest.mark.parametrize("parallel", [True, False], ids=["pscan", "sequential"])
def test_s6_equals_mambapy_with_the_same_weights(parallel):
    torch.manual_seed(0)
    cell = S6Cell(5, 32)
    block = copy_into_mambapy(cell)
    block.config.pscan = parallel
    x = torch.randn(3, 21, 5)
    u = F.linear(x, cell.weight_u, cell.bias_u)  # mambapy's ssm takes u (its conv's output) directly
    ours, _ = cell.sequence(x, cell.zero_state(3, x))
    torch.testing.assert_close(ours, block.ssm(u, None), atol=1e-4, rtol=1e-4)
    state, h = cell.zero_state(3, x), None  # one step at a time: our step against mambapy's ssm_step
    for t in range(x.shape[1]):
        state, _ = cell.step(x[:, t], state)
        y, h = block.ssm_step(u[:, t], h)
        torch.testing.assert_close(state[0], y, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(state[1], h, atol=1e-4, rtol=1e-4)
