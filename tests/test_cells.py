"""Our cells, written from the equations, equal torch's cells in outputs and gradients."""

import pytest
import torch

from zoo.cells import GRUCell, LSTMCell, RNNCell
from zoo.families import cell_class

PAIRS = [
    (lambda: RNNCell(5, 7), lambda: torch.nn.RNNCell(5, 7)),
    (lambda: RNNCell(5, 7, nonlinearity="relu"), lambda: torch.nn.RNNCell(5, 7, nonlinearity="relu")),
    (lambda: GRUCell(5, 7), lambda: torch.nn.GRUCell(5, 7)),
    (lambda: LSTMCell(5, 7), lambda: torch.nn.LSTMCell(5, 7)),
]


@pytest.mark.parametrize("make_ours, make_ref", PAIRS, ids=["rnn-tanh", "rnn-relu", "gru", "lstm"])
def test_cell_equals_torch_outputs_and_gradients(make_ours, make_ref):
    torch.manual_seed(0)
    ours, ref = make_ours(), make_ref()
    ref.load_state_dict(ours.state_dict())  # same names, same gate order
    x = torch.randn(4, 5, requires_grad=True)
    is_lstm = isinstance(ours, LSTMCell)
    h0 = (torch.randn(4, 7), torch.randn(4, 7)) if is_lstm else torch.randn(4, 7)
    out_ours, out_ref = ours(x, h0), ref(x, h0)
    if is_lstm:
        out_ours, out_ref = torch.cat(out_ours, -1), torch.cat(out_ref, -1)
    torch.testing.assert_close(out_ours, out_ref, atol=1e-5, rtol=0)
    weights = torch.randn_like(out_ours)  # a loss that weighs every output differently
    grads_ours = torch.autograd.grad((out_ours * weights).sum(), [x, *ours.parameters()])
    grads_ref = torch.autograd.grad((out_ref * weights).sum(), [x, *ref.parameters()])
    for a, b in zip(grads_ours, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_gates_are_returned_and_bounded():
    torch.manual_seed(0)
    (h, c), gates = LSTMCell(3, 4)(torch.randn(2, 3), return_gates=True)
    for name in ("input", "forget", "output"):
        assert ((gates[name] > 0) & (gates[name] < 1)).all(), name
    torch.testing.assert_close(h, gates["output"] * torch.tanh(c))
    _, gates = GRUCell(3, 4)(torch.randn(2, 3), return_gates=True)
    assert set(gates) == {"reset", "update", "candidate"}


def test_fused_gate_matmul_shapes():
    assert LSTMCell(3, 4).weight_hh.shape == (16, 4)
    assert GRUCell(3, 4).weight_ih.shape == (12, 3)


def test_unknown_cell_and_nonlinearity_errors():
    with pytest.raises(ValueError, match="unknown cell 'lstmm'.*'gru'"):
        cell_class("lstmm")
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(2, 2, nonlinearity="sigmoid")


def test_recur_returns_the_state_and_gates_of_its_equations():
    # recur is the equations after the input projection: check LSTM's against a direct transcription
    torch.manual_seed(0)
    cell = LSTMCell(3, 4)
    x_proj, h, c = torch.randn(2, 16), torch.randn(2, 4), torch.randn(2, 4)
    (h1, c1), gates = LSTMCell.recur(x_proj, (h, c), cell.weight_hh, cell.bias_hh)
    pre = x_proj + h @ cell.weight_hh.t() + cell.bias_hh
    i, f, g, o = pre[:, :4].sigmoid(), pre[:, 4:8].sigmoid(), pre[:, 8:12].tanh(), pre[:, 12:].sigmoid()
    torch.testing.assert_close(c1, f * c + i * g)
    torch.testing.assert_close(h1, o * torch.tanh(f * c + i * g))
    torch.testing.assert_close(gates["forget"], f)


def test_min_cells_are_the_papers_equations_and_their_scan_coefficients():
    # Feng et al. 2024, written out: minGRU and minLSTM from x_t only, g(x) = x + 0.5 (x >= 0) else sigmoid(x)
    from zoo.cells import MinGRUCell, MinLSTMCell, g

    torch.testing.assert_close(
        g(torch.tensor([-2.0, 0.0, 3.0])), torch.tensor([torch.sigmoid(torch.tensor(-2.0)).item(), 0.5, 3.5])
    )
    torch.manual_seed(0)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    gru = MinGRUCell(3, 4).double()
    assert gru.weight_hh is None and gru.bias_hh is None and gru.weight_ih.shape == (8, 3)
    W_z, W_h = gru.weight_ih.split(4)
    b_z, b_h = gru.bias_ih.split(4)
    z = torch.sigmoid(x @ W_z.t() + b_z)
    h_tilde = g(x @ W_h.t() + b_h)
    expected = (1 - z) * h + z * h_tilde
    new, gates = gru(x, h, return_gates=True)
    torch.testing.assert_close(new, expected)
    torch.testing.assert_close(gates["update"], z)
    lstm = MinLSTMCell(3, 4).double()
    W_f, W_i, W_h = lstm.weight_ih.split(4)
    b_f, b_i, b_h = lstm.bias_ih.split(4)
    f, i = torch.sigmoid(x @ W_f.t() + b_f), torch.sigmoid(x @ W_i.t() + b_i)
    expected = f / (f + i) * h + i / (f + i) * g(x @ W_h.t() + b_h)
    torch.testing.assert_close(lstm(x, h), expected)
    for cell in (gru, lstm):  # h_t = a_t h_{t-1} + b_t, the form the scan computes
        x_proj = torch.nn.functional.linear(x, cell.weight_ih, cell.bias_ih)
        a, b = cell.coefficients(x_proj)
        torch.testing.assert_close(a * h + b, cell(x, h))


def test_unknown_cell_lists_every_family():
    with pytest.raises(
        ValueError, match=r"expected one of \['gru', 'lstm', 'mingru', 'minlstm', 'mlstm', 'rglru', 'rnn', 's6', 'slstm'\]"
    ):
        cell_class("min-gru")
