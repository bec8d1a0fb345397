"""Gradient-through-time measurement against analytic values and torch's own RNNs; the grad-norm callback."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from zoo.gradients import (
    GradientNormLogger,
    by_distance,
    grad_norms,
    gradient_through_time,
    hidden_gradient_norms,
    lm_gradient_through_time,
    parameter_group,
)
from zoo.recurrent import Recurrent


def test_linear_rnn_matches_analytic_gradient():
    # h_t = W h_{t-1} + U x_t,  L = v . h_T  =>  dL/dh_t = (W^T)^(T-t) v
    torch.manual_seed(0)
    H, D, T, B = 5, 3, 12, 2
    W = torch.randn(H, H, dtype=torch.float64) * 0.6
    U = torch.randn(H, D, dtype=torch.float64, requires_grad=True)
    v = torch.randn(H, dtype=torch.float64)
    xs = list(torch.randn(T, B, D, dtype=torch.float64))
    norms = hidden_gradient_norms(
        lambda x, h: h @ W.T + x @ U.T, torch.zeros(B, H, dtype=torch.float64), xs, lambda states: (states[-1] @ v).sum()
    )["hidden"]
    assert norms.shape == (B, T)
    for t in range(T):
        expected = torch.linalg.matrix_power(W.T, T - 1 - t) @ v
        torch.testing.assert_close(norms[:, t], expected.norm().expand(B))
    # by_distance: index 0 is the last step
    torch.testing.assert_close(by_distance(norms)[0], v.norm())


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_recurrent_matches_torch_native_rnn(cell):
    # Independent check: dL/dh_t is the gradient of the loss w.r.t. the *initial* state of torch's own
    # RNN run over the remaining inputs x_{t+1..T}.
    torch.manual_seed(1)
    B, T, D, H = 3, 7, 4, 6
    rnn = Recurrent(D, H, cell).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    target = torch.randn(B, H, dtype=torch.float64)

    def loss_fn(out):
        return ((out[:, -1] - target) ** 2).sum()

    measured = gradient_through_time(rnn, x, loss_fn)
    assert len(measured) == 1 and measured[0]["hidden"].shape == (B, T)
    assert all(p.grad is None for p in rnn.parameters())  # parameters' gradients are left alone
    layer = rnn.layers[0]
    gates = rnn(x, return_gates=True, backend="cells").gates[0] if cell == "lstm" else None
    for t in range(T - 1):
        with torch.no_grad():
            _, state = layer(x[:, : t + 1])
        if cell == "lstm":
            # the total dL/dc_t includes the path through h_t = o_t * tanh(c_t)
            c0 = state[1].clone().requires_grad_()
            h0 = gates["output"][:, t] * torch.tanh(c0)
            out, _ = layer(x[:, t + 1 :], (h0, c0))
            gh, gc = torch.autograd.grad(loss_fn(out), (h0, c0))
            torch.testing.assert_close(measured[0]["cell"][:, t], gc[0].norm(dim=-1))
        else:
            h0 = state.clone().requires_grad_()
            out, _ = layer(x[:, t + 1 :], h0)
            (gh,) = torch.autograd.grad(loss_fn(out), h0)
        torch.testing.assert_close(measured[0]["hidden"][:, t], gh[0].norm(dim=-1))


def test_deep_network_reports_every_layer():
    torch.manual_seed(2)
    rnn = Recurrent(3, 5, "gru", num_layers=2)
    result = gradient_through_time(rnn, torch.randn(2, 9, 3), lambda out: out[:, -1].sum())
    assert len(result) == 2
    assert all(r["hidden"].shape == (2, 9) for r in result)
    assert (result[0]["hidden"] > 0).all()  # the lower layer gets gradient through the upper one
    with pytest.raises(ValueError, match="unidirectional"):
        gradient_through_time(Recurrent(3, 5, bidirectional=True), torch.randn(2, 4, 3), lambda out: out.sum())


def test_vanilla_rnn_gradient_vanishes_at_init():
    torch.manual_seed(3)
    from zoo.tasks.language_model import CharLanguageModel

    model = CharLanguageModel(vocab=["<unk>"] + list("abcdefgh"), cell="rnn", hidden_size=64, embedding_dim=16)
    norms = by_distance(lm_gradient_through_time(model, torch.randint(1, 9, (8, 41)))[0]["hidden"])
    assert norms.shape == (40,)
    assert norms[30] < 1e-3 * norms[0]
    assert all(p.grad is None for p in model.parameters())


def test_parameter_groups():
    assert parameter_group("rnn.layers.0.weight_hh_l0") == "rnn.layers.0.weight_hh"
    assert parameter_group("rnn.layers.1.bias_ih_l0_reverse") == "rnn.layers.1.bias_ih_reverse"
    assert parameter_group("head.weight") == "head"
    assert parameter_group("head.weight", "top") == "head"
    assert parameter_group("head.weight", "parameter") == "head.weight"
    with pytest.raises(ValueError, match="group_by"):
        parameter_group("x", "nope")


class _TinyTask(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.rnn = Recurrent(3, 4, "lstm", num_layers=2)
        self.head = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.head(self.rnn(x).output[:, -1]).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_gradient_norm_logger_logs_pre_clip_norms(tmp_path):
    torch.manual_seed(4)
    data = torch.utils.data.TensorDataset(torch.randn(8, 5, 3) * 10, torch.randn(8) * 100)
    logger = GradientNormLogger(every_n_steps=2)
    seen = []

    class Check(L.Callback):  # runs after the logger, before clipping: the norms must agree
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            seen.append(grad_norms(pl_module)["total"])

    trainer = L.Trainer(
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[logger, Check()],
        gradient_clip_val=1e-3,
        default_root_dir=tmp_path,
    )
    trainer.fit(_TinyTask(), torch.utils.data.DataLoader(data, batch_size=2))
    assert [h["step"] for h in logger.history] == [0, 2]
    first = logger.history[0]
    assert {"rnn.layers.0.weight_hh", "rnn.layers.1.weight_ih", "head", "total"} <= set(first)
    assert first["total"] == pytest.approx(seen[0], rel=1e-5)
    assert first["total"] > 1e-3  # measured before clipping to 1e-3
    total = sum(v**2 for k, v in first.items() if k not in ("step", "total")) ** 0.5
    assert first["total"] == pytest.approx(total, rel=1e-5)
    assert "grad_norm/total" in trainer.callback_metrics
