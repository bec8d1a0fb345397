"""zoo.scan and minGRU/minLSTM in Recurrent: the parallel scan equals the sequential step of
zoo.cells (outputs, final state and gradients; float32 to 1e-5, float64 to 1e-10), with padding,
deep and bidirectional stacks and a carried state, and one step at a time."""

import pytest
import torch

from zoo import scan
from zoo.recurrent import Recurrent

TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}


def sequential(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("T", [1, 2, 7, 16, 50])  # one chunk, padded chunks (7 = 3 x 3 - 2), exact chunks
def test_linear_scan_equals_the_recurrence_with_gradients(T):
    torch.manual_seed(T)
    B, H = 3, 4
    a = torch.rand(B, T, H, dtype=torch.float64, requires_grad=True)
    b, h0 = (
        torch.randn(B, T, H, dtype=torch.float64, requires_grad=True),
        torch.randn(B, H, dtype=torch.float64, requires_grad=True),
    )
    weights = torch.randn(B, T, H, dtype=torch.float64)
    ours, ref = scan.linear_scan(a, b, h0), sequential(a, b, h0)
    torch.testing.assert_close(ours, ref, **TOL[torch.float64])
    for g_ours, g_ref in zip(
        torch.autograd.grad((ours * weights).sum(), (a, b, h0)), torch.autograd.grad((ref * weights).sum(), (a, b, h0))
    ):
        torch.testing.assert_close(g_ours, g_ref, **TOL[torch.float64])


def test_linear_scan_gradcheck_and_reverse():
    torch.manual_seed(0)
    a = torch.rand(2, 7, 3, dtype=torch.float64, requires_grad=True)
    b, h0 = (
        torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 3, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(scan.linear_scan, (a, b, h0))
    backwards = scan.scan_chunked(a.detach(), b.detach(), h0.detach(), reverse=True)
    expected = sequential(a.detach().flip(1), b.detach().flip(1), h0.detach()).flip(1)
    torch.testing.assert_close(backwards, expected, **TOL[torch.float64])


def test_log_space_scan_equals_linear_scan():
    torch.manual_seed(0)
    a = torch.rand(2, 40, 3, dtype=torch.float64) * 0.98 + 0.01
    b, h0 = torch.rand(2, 40, 3, dtype=torch.float64) + 0.01, torch.randn(2, 3, dtype=torch.float64)  # any sign of h0
    torch.testing.assert_close(scan.log_space_scan(a, b, h0), scan.linear_scan(a, b, h0), **TOL[torch.float64])


def test_chunk_size_divides_when_it_can():
    assert scan.chunk_size(2048) in (32, 64) and 2048 % scan.chunk_size(2048) == 0
    assert scan.chunk_size(1) == 1
    assert scan.chunk_size(97) == 10  # prime: no divisor near sqrt, the last chunk is padded


CONFIGS = [(cell, layers, bi) for cell in ("mingru", "minlstm") for layers, bi in ((1, False), (2, True))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell, layers, bi", CONFIGS)
def test_scan_equals_the_sequential_step(cell, layers, bi, dtype):
    # padded batch, carried state of any sign, weights and input and state all get gradients
    torch.manual_seed(0)
    rnn = Recurrent(4, 6, cell, num_layers=layers, bidirectional=bi).to(dtype)
    x = torch.randn(3, 9, 4, dtype=dtype, requires_grad=True)
    state = torch.randn(layers * (2 if bi else 1), 3, 6, dtype=dtype, requires_grad=True)
    lengths = torch.tensor([9, 5, 1])
    inputs = [x, state, *rnn.parameters()]

    def run(backend):
        out = rnn(x, lengths, state, backend=backend)
        weights = torch.linspace(-1, 1, out.output.numel(), dtype=dtype).view_as(out.output)
        return out, torch.autograd.grad((out.output * weights).sum() + out.state.square().sum(), inputs)

    (parallel, g_parallel), (step, g_step) = run("native"), run("cells")
    torch.testing.assert_close(parallel.output, step.output, **TOL[dtype])
    torch.testing.assert_close(parallel.state, step.state, **TOL[dtype])
    for a, b in zip(g_parallel, g_step):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_one_step_at_a_time_continues_the_scan(cell):
    # streaming; windows of truncated BPTT: tests/test_recurrent.py::test_initial_state_in_final_state_out
    torch.manual_seed(0)
    rnn, x = Recurrent(3, 5, cell, num_layers=2), torch.randn(2, 10, 3)
    whole = rnn(x)
    state, outs = None, []
    for t in range(10):  # streaming: one step per call, the state carried
        out = rnn(x[:, t : t + 1], state=state)
        state = out.state
        outs.append(out.output)
    torch.testing.assert_close(torch.cat(outs, 1), whole.output, atol=1e-6, rtol=0)
    torch.testing.assert_close(state, whole.state, atol=1e-6, rtol=0)
    assert whole.state.shape == (2, 2, 5)


def test_gates_of_the_sequential_step():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3)
    out = Recurrent(3, 5, "minlstm", bidirectional=True, backend="cells")(x, return_gates=True)
    gates = out.gates[0]
    assert set(gates) == {"forget", "input", "candidate"}
    torch.testing.assert_close(gates["forget"] + gates["input"], torch.ones(2, 6, 10))  # normalised
    out = Recurrent(3, 5, "mingru", backend="cells")(x, return_gates=True)
    assert set(out.gates[0]) == {"update", "candidate"}
    assert (out.gates[0]["candidate"] > 0).all()  # g(x) > 0
    with pytest.raises(ValueError, match="backend='cells'"):
        Recurrent(3, 5, "mingru")(x, return_gates=True)


def test_parameters_are_not_torch_rnn_modules_and_state_keeps_torchs_layout():
    rnn = Recurrent(3, 5, "minlstm", num_layers=2, bidirectional=True)
    assert not any(isinstance(m, torch.nn.RNNBase) for m in rnn.modules())
    names = set(rnn.state_dict())
    assert names == {f"layers.{l}.{w}_ih_l0{s}" for l in (0, 1) for s in ("", "_reverse") for w in ("bias", "weight")}
    assert rnn.layers[1].weight_ih_l0.shape == (15, 10)  # f, i, h~ stacked; input = both directions
    assert rnn(torch.randn(2, 4, 3)).state.shape == (4, 2, 5)


def test_bad_cell_and_backend_say_what_is_supported():
    with pytest.raises(ValueError, match=r"unknown cell 'mingur'.*'mingru', 'minlstm'"):
        Recurrent(2, 2, "mingur")
    with pytest.raises(ValueError, match=r"unknown backend 'scan' for cell 'mingru'.*'native' \(the parallel scan.*'cells'"):
        Recurrent(2, 2, "mingru", backend="scan")
    rnn = Recurrent(2, 2, "minlstm")
    with pytest.raises(ValueError, match=r"unknown backend 'cudnn' for cell 'minlstm'"):
        rnn(torch.randn(1, 3, 2), backend="cudnn")
