"""RG-LRU (zoo/rglru.py): Griffin's equations 1-4 as a direct loop written here, the initialisation of
a^c, the bounded derivative of sqrt(1 - a^2), and the properties every modern family shares
(tests/family_checks.py)."""

from __future__ import annotations

import pytest
import torch

from tests.family_checks import *  # noqa: F403  the shared tests, run here for rglru
from tests.family_checks import family_fixture, make
from zoo import rglru
from zoo.rglru import RGLRUCell

family = family_fixture("rglru")


def griffin_loop(cell: RGLRUCell, x: torch.Tensor) -> torch.Tensor:
    """De et al. (2024), eq. 1-4, in the paper's own form (a = sigma(Λ) raised to c r_t, no log space):
    r_t = σ(W_a x_t + b_a), i_t = σ(W_x x_t + b_x), a_t = a^(c r_t), h_t = a_t h_{t-1} + sqrt(1 - a_t²) (i_t u_t)."""
    H = cell.hidden_size
    W_a, W_x, W_u = cell.weight_ih[:H], cell.weight_ih[H : 2 * H], cell.weight_ih[2 * H :]
    b_a, b_x, b_u = cell.bias_ih[:H], cell.bias_ih[H : 2 * H], cell.bias_ih[2 * H :]
    a = torch.sigmoid(cell.lam)
    h = torch.zeros(x.shape[0], H, dtype=x.dtype)
    hs = []
    for t in range(x.shape[1]):
        r = torch.sigmoid(x[:, t] @ W_a.T + b_a)  # eq. 1, recurrence gate
        i = torch.sigmoid(x[:, t] @ W_x.T + b_x)  # eq. 2, input gate
        a_t = a ** (8 * r)  # eq. 3, c = 8
        u = x[:, t] @ W_u.T + b_u
        h = a_t * h + torch.sqrt(1 - a_t**2) * (i * u)  # eq. 4
        hs.append(h)
    return torch.stack(hs, 1)


@pytest.mark.parametrize("backend", ["native", "cells"])
def test_rglru_equals_griffins_equations(backend):
    rnn = make("rglru", backend=backend).double()
    with torch.no_grad():  # non-zero biases, so that each one is checked
        rnn.layers[0].l0.bias_ih.normal_()
    x = torch.randn(2, 12, 5, dtype=torch.float64)
    torch.testing.assert_close(rnn(x).output, griffin_loop(rnn.layers[0].l0, x), atol=1e-10, rtol=1e-10)


def test_rglru_initialises_a_to_the_power_c_over_the_papers_range():
    cell = RGLRUCell(3, 50)
    decay = torch.sigmoid(cell.lam.detach().double()) ** rglru.C
    assert rglru.C == 8
    assert decay.min() >= 0.9 and decay.max() <= 0.999
    assert decay.min() < 0.902 and decay.max() > 0.997  # spread over the whole range, evenly
    torch.testing.assert_close(decay.diff(), torch.full((49,), 0.099 / 50, dtype=torch.float64), atol=1e-6, rtol=0)


def test_rglru_sqrt_has_a_bounded_derivative_and_the_exact_value():
    x = torch.tensor([0.0, 1e-12, 0.25, 4.0], dtype=torch.float64, requires_grad=True)
    y = rglru.SqrtBoundedGradient.apply(x)
    torch.testing.assert_close(y, x.sqrt())
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(
        grad, torch.tensor([rglru.MAX_SQRT_GRADIENT, rglru.MAX_SQRT_GRADIENT, 1.0, 0.25], dtype=torch.float64)
    )


def test_rglru_returns_its_decay_and_input_gates():
    out = make("rglru", backend="cells")(torch.randn(2, 4, 5), return_gates=True)
    gates = out.gates[0]
    assert set(gates) == {"decay", "input"}
    for g in gates.values():
        assert g.shape == (2, 4, 8) and ((g > 0) & (g < 1)).all()
