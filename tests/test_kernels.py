"""zoo.kernels: each speed path computes exactly zoo.cells' equations (gradcheck in float64; equal to
the plain equations path and to torch.nn in float32), Recurrent really takes it, and zoo/cells.py
stays free of them."""

import ast
from pathlib import Path
from unittest import mock

import pytest
import torch

from zoo import kernels
from zoo.recurrent import Recurrent

CELLS_SOURCE = Path(__file__).resolve().parents[1] / "zoo" / "cells.py"


def flat(state):
    return torch.cat([s.flatten() for s in state]) if isinstance(state, tuple) else state.flatten()


def f64(*shapes):
    return [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]


def test_lstm_pointwise_and_its_backward_equal_the_cell_equations():
    # LSTMLayer's step and hand-written backward against LSTMCell.recur through autograd (float64)
    from zoo.cells import LSTMCell

    torch.manual_seed(0)
    B, H = 3, 5
    gates, c = f64((B, 4 * H), (B, H))
    (h_ref, c_ref), _ = LSTMCell.recur(
        gates, (torch.zeros(B, H, dtype=torch.float64), c), torch.zeros(4 * H, H, dtype=torch.float64), None
    )
    act, c_new, tanh_c, h_new = (torch.empty_like(t) for t in (gates, c, c, c))
    with torch.no_grad():
        kernels.lstm_pointwise(gates, c, act, c_new, tanh_c, h_new)
    torch.testing.assert_close((h_new, c_new), (h_ref, c_ref))
    grad_h, grad_c = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    expected = torch.autograd.grad((h_ref, c_ref), (gates, c), (grad_h, grad_c))
    grad_gates = torch.empty_like(gates)
    grad_c_prev = kernels.lstm_pointwise_backward(grad_h, grad_c, act, c.detach(), tanh_c, grad_gates)
    torch.testing.assert_close((grad_gates, grad_c_prev), expected)


def test_lstm_layer_gradcheck():
    torch.manual_seed(0)
    T, B, I, H = 5, 3, 4, 2
    args = f64((T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,))
    assert torch.autograd.gradcheck(kernels.LSTMLayer.apply, args)


def test_hoisted_projection_gradcheck():
    # W_hh's gradient comes out of the projection's backward: sum_t dL/dgates_t^T h_{t-1}, with the
    # h_{t-1} the caller hands over. Checked as a function of all inputs against finite differences.
    torch.manual_seed(0)
    T, B, I, H = 4, 3, 2, 5
    x, w_ih, b_ih, w_hh, b_hh = f64((T, B, I), (H, I), (H,), (H, H), (H,))

    def rnn(x, w_ih, b_ih, w_hh, b_hh):  # a tanh RNN through the kernel, as Recurrent runs it
        previous = []
        proj = kernels.HoistedProjection.apply(x, w_ih, b_ih, w_hh, b_hh, previous)
        h, hs = x.new_zeros(B, H), []
        for x_t in proj.unbind(0):
            hs.append(h.detach())
            h = torch.tanh(x_t + h @ w_hh.detach().t())
        previous.append(torch.stack(hs))
        return h

    assert torch.autograd.gradcheck(rnn, (x, w_ih, b_ih, w_hh, b_hh))


def test_recurrent_matmul_equals_addmm():
    torch.manual_seed(0)
    w, a, other = torch.randn(32, 16), torch.randn(4, 16), torch.randn(4, 32)
    torch.testing.assert_close(kernels.RecurrentMatmul(w, 4)(other, a), torch.addmm(other, a, w.t()), atol=1e-5, rtol=0)


CONFIGS = [(cell, nl) for cell, nl in (("lstm", "tanh"), ("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"))]


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("cell, nonlinearity", CONFIGS)
def test_kernel_paths_equal_equations_and_native(cell, nonlinearity, padded):
    # 2 layers, bidirectional, carried state: backend="cells" without gates (the kernels) against the
    # same backend with gates (the plain equations loop) and against torch.nn, in float32.
    torch.manual_seed(0)
    rnn = Recurrent(4, 6, cell, num_layers=2, bidirectional=True, nonlinearity=nonlinearity)
    x = torch.randn(3, 8, 4, requires_grad=True)
    lengths = torch.tensor([8, 5, 1]) if padded else None
    shape = (4, 3, 6)
    state = (
        tuple(torch.randn(*shape, requires_grad=True) for _ in range(2))
        if cell == "lstm"
        else torch.randn(*shape, requires_grad=True)
    )
    inputs = [x, *(state if cell == "lstm" else (state,)), *rnn.parameters()]

    def run(**kw):
        out = rnn(x, lengths, state, **kw)
        weights = torch.linspace(-1, 1, out.output.numel()).view_as(out.output)  # every output weighed differently
        loss = (out.output * weights).sum() + flat(out.state).square().sum()
        return out, torch.autograd.grad(loss, inputs)

    kernel, g_kernel = run(backend="cells")
    equations, g_equations = run(backend="cells", return_gates=True)
    native, g_native = run(backend="native")
    for other, g_other in ((equations, g_equations), (native, g_native)):
        torch.testing.assert_close(kernel.output, other.output, atol=1e-5, rtol=0)
        torch.testing.assert_close(flat(kernel.state), flat(other.state), atol=1e-5, rtol=0)
        for a, b in zip(g_kernel, g_other):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def counting(cls):
    return mock.patch.object(cls, "apply", side_effect=cls.apply)


def test_recurrent_takes_the_fused_layer_only_when_it_may():
    rnn = Recurrent(3, 4, "lstm", num_layers=2, bidirectional=True, backend="cells")
    x = torch.randn(2, 5, 3)
    with counting(kernels.LSTMLayer) as fused:
        rnn(x)
        assert fused.call_count == 4  # 2 layers x 2 directions
        rnn(x, torch.tensor([5, 3]))  # padded: the step loop
        rnn(x, return_gates=True)  # gates: the equations loop
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rnn(x)
        assert fused.call_count == 4


@pytest.mark.parametrize("cell, expected", [("lstm", 2), ("rnn", 2), ("gru", 0)])
def test_recurrent_hoists_w_hh_gradient_where_valid(cell, expected):
    rnn = Recurrent(3, 4, cell, bidirectional=True, backend="cells")
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 3])
    with counting(kernels.HoistedProjection) as hoisted:
        rnn(x, lengths)
        assert hoisted.call_count == expected
        with torch.no_grad():  # no gradient: nothing to hoist
            rnn(x, lengths)
        rnn(x, lengths, return_gates=True)
        assert hoisted.call_count == expected


def test_cells_module_holds_only_equations():
    tree = ast.parse(CELLS_SOURCE.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            assert not any("Function" in b for b in bases), f"{node.name} is an autograd.Function"
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("mkldnn", "autograd", "ops"), f"line {node.lineno}: .{node.attr}"
        if isinstance(node, ast.Name):
            assert "mkldnn" not in node.id and "onednn" not in node.id.lower(), f"line {node.lineno}: {node.id}"
        if isinstance(node, ast.keyword):
            assert node.arg != "out", f"line {node.lineno}: an out= kernel"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any("kernels" in n or "autograd" in n for n in names), f"line {node.lineno} imports {names}"
