r"""Gradients through time, measured — and gradient norms logged while training.

Backpropagation through time multiplies the gradient by one Jacobian per step it travels back:

.. math::
    \frac{\partial L}{\partial h_t} = \Big(\prod_{s=t+1}^{T} \frac{\partial h_s}{\partial h_{s-1}}\Big)^{\!\top}
    \frac{\partial L}{\partial h_T}

For a vanilla RNN :math:`\partial h_s/\partial h_{s-1} = \mathrm{diag}(1-h_s^2)\,W_{hh}`, so the norm
shrinks or grows geometrically with the distance ``T - t`` (vanishing / exploding gradients); the
additive cell update of the LSTM (:math:`c_s = f_s \odot c_{s-1} + \dots`) and the interpolation of
the GRU give the gradient a path that is only scaled by gates.

:func:`hidden_gradient_norms` measures :math:`\lVert\partial L/\partial h_t\rVert` for every ``t``
for any step function (so a test can compare it with the analytic value for a linear RNN);
:func:`gradient_through_time` does it for a :class:`~zoo.recurrent.Recurrent` (any cell, any depth),
and :func:`lm_gradient_through_time` for a character language model with the loss on its last
prediction. :class:`GradientNormLogger` logs per-layer/per-parameter gradient norms while any task
trains.

The measurement is the *total* derivative: the gradient reaching ``h_t`` through every later step
(and through the layers above). It cannot be read off the stacked output of
:class:`~zoo.recurrent.Recurrent` (that tensor is a copy the next step never reads), so the time loop
is re-run here with the very same parameters and the cells' own ``recur`` functions, holding on to
each step's state.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.families import cell_class
from zoo.recurrent import Recurrent, SequenceLayer, Weights
from zoo.sequences import evaluating, hidden_of

StepFn = Callable[[Tensor, object], object]  # (x_t, state) -> state


def hidden_gradient_norms(
    step: StepFn,
    state0,
    inputs: Sequence[Tensor],
    loss_fn: Callable[[List[object]], Tensor],
    hidden_of: Callable[[object], Tensor] = lambda s: s,
) -> Dict[str, Tensor]:
    """Run ``state = step(x_t, state)`` over ``inputs`` and return the norm of the total gradient of
    ``loss_fn(states)`` with respect to every step's hidden state.

    ``hidden_of`` picks the hidden vector out of a state (``lambda s: s[0]`` for an LSTM's ``(h, c)``;
    the cell state's gradient is then returned too, as ``"cell"``). Norms are per sequence of the
    batch: ``{"hidden": (batch, time)[, "cell": (batch, time)]}``, time in input order.
    """
    states, state = [], state0
    for x_t in inputs:
        state = step(x_t, state)
        for tensor in state if isinstance(state, tuple) else (state,):
            if tensor.requires_grad:
                tensor.retain_grad()
        states.append(state)
    loss = loss_fn(states)
    loss.backward()

    def norms(tensors: List[Tensor]) -> Tensor:
        return torch.stack([t.grad.flatten(1).norm(dim=1) if t.grad is not None else t.new_zeros(t.shape[0]) for t in tensors], 1)

    result = {"hidden": norms([hidden_of(s) for s in states])}
    if isinstance(states[0], tuple):
        result["cell"] = norms([s[1] for s in states])
    return result


def gradient_through_time(
    rnn: Recurrent,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
    state=None,
) -> List[Dict[str, Tensor]]:
    r""":math:`\lVert\partial L/\partial h^{(l)}_t\rVert` for every layer ``l`` and step ``t`` of a
    unidirectional :class:`~zoo.recurrent.Recurrent`, where ``L = loss_fn(top_layer_output)`` and the
    output is ``(batch, time, hidden)``.

    Returns one dict per layer, ``{"hidden": (batch, time)}`` (plus ``"cell"`` for an LSTM: the total
    :math:`\lVert\partial L/\partial c_t\rVert`, the path through :math:`h_t = o_t \odot \tanh(c_t)`
    included). The parameters' ``.grad`` are left as they were.
    """
    if rnn.bidirectional:
        raise ValueError(
            "gradient_through_time measures unidirectional networks (a reverse direction has no single 'distance from the loss')"
        )
    params = list(rnn.parameters())
    saved = [p.grad for p in params]
    layer_states: List[List[object]] = []
    h_in = x if x.requires_grad else x.detach().requires_grad_()  # every state then needs a gradient
    start = state if state is not None else rnn.initial_state(x.shape[0], x)  # torch's layout, one row per layer
    for index, layer in enumerate(rnn.layers):
        s = tuple(part[index] for part in start) if isinstance(start, tuple) else start[index]
        inputs, step = _layer_step(rnn, layer, rnn.layer_input(index, h_in))
        steps = []
        for x_t in inputs:
            s = step(x_t, s)
            for tensor in s if isinstance(s, tuple) else (s,):
                tensor.retain_grad()
            steps.append(s)
        layer_states.append(steps)
        h_in = rnn.layer_output(index, h_in, torch.stack([hidden_of(t) for t in steps], 1))
        # (no dropout: this is a measurement of the deterministic network)
    loss_fn(h_in).backward()
    for p, g in zip(params, saved):
        p.grad = g
    result = []
    for steps in layer_states:
        hidden = [hidden_of(t) for t in steps]
        entry = {
            "hidden": torch.stack([h.grad.norm(dim=-1) if h.grad is not None else h.new_zeros(h.shape[0]) for h in hidden], 1)
        }
        if rnn.cell == "lstm":
            entry["cell"] = torch.stack(
                [t[1].grad.norm(dim=-1) if t[1].grad is not None else t[1].new_zeros(t[1].shape[0]) for t in steps], 1
            )
        result.append(entry)
    return result


def _layer_step(rnn: Recurrent, layer, h_in: Tensor):
    """The inputs of one layer's forward direction, step by step, and its step ``(x_t, s) -> s'``:
    a classic cell's ``recur`` after the hoisted input projection, a modern family's ``step``."""
    if isinstance(layer, SequenceLayer):
        cell = layer.direction(0)
        return h_in.unbind(1), lambda x_t, s: cell.step(x_t, s)[0]
    recur = cell_class(rnn.cell).recur
    extra = (rnn.nonlinearity,) if rnn.cell == "rnn" else ()
    w_ih, w_hh, b_ih, b_hh = Weights.of(layer, 0)  # minGRU/minLSTM: no w_hh, b_hh (None)
    return F.linear(h_in, w_ih, b_ih).unbind(1), lambda x_t, s: recur(x_t, s, w_hh, b_hh, *extra)[0]


def lm_gradient_through_time(model, ids: Tensor) -> List[Dict[str, Tensor]]:
    r"""For a :class:`~zoo.tasks.language_model.CharLanguageModel`: the network reads ``ids[:, :-1]``
    and the loss is the cross-entropy of its *last* prediction against ``ids[:, -1]``. Returns one
    ``{"hidden": (batch, time - 1)[, "cell": ...]}`` per layer; column ``t`` lies ``time - 2 - t``
    steps from the loss. Dropout is off and the model's ``.grad`` are left as they were."""
    inputs, last = ids[:, :-1], ids[:, -1]
    params = list(model.parameters())
    saved = [p.grad for p in params]

    def loss_fn(top: Tensor) -> Tensor:
        return F.cross_entropy(model.head(top[:, -1]), last, reduction="sum")  # sum: per-sequence gradients

    try:
        with evaluating(model), torch.enable_grad():  # eval: no dropout; gradients all the same
            return gradient_through_time(model.rnn, model.inputs(inputs).detach(), loss_fn)
    finally:
        for p, g in zip(params, saved):
            p.grad = g


def by_distance(norms: Tensor) -> Tensor:
    """``(batch, time)`` norms in input order → mean over the batch, indexed by distance from the loss
    at the last step (index 0 = the last step)."""
    return norms.mean(0).flip(0)


# ---- a callback for every task -----------------------------------------------------------------
def parameter_group(name: str, by: str = "module") -> str:
    """Group key of a parameter name: ``"module"`` → its module path plus, for recurrent layers, the
    kind of weight (``rnn.layers.0.weight_hh_l0`` → ``rnn.layers.0.weight_hh``; ``head.weight`` →
    ``head``); ``"parameter"`` → the full name; ``"top"`` → the first component (``rnn``, ``head``)."""
    if by == "parameter":
        return name
    if by == "top":
        return name.split(".")[0]
    if by != "module":
        raise ValueError(f"group_by must be 'module', 'parameter' or 'top', got {by!r}")
    module, _, leaf = name.rpartition(".")
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if leaf.startswith(kind):
            suffix = "_reverse" if leaf.endswith("_reverse") else ""
            return f"{module}.{kind}{suffix}" if module else kind + suffix
    return module or leaf


@torch.no_grad()
def grad_norms(module: torch.nn.Module, group_by: str = "module", norm_type: float = 2.0) -> Dict[str, float]:
    """Gradient norm of each parameter group, plus ``"total"`` (the global norm that clipping uses)."""
    squares: Dict[str, Tensor] = {}
    total = None
    for name, p in module.named_parameters():
        if p.grad is None:
            continue
        n = p.grad.detach().float().norm(norm_type) ** norm_type
        key = parameter_group(name, group_by)
        squares[key] = squares.get(key, 0) + n
        total = n if total is None else total + n
    out = {k: float(v ** (1 / norm_type)) for k, v in squares.items()}
    if total is not None:
        out["total"] = float(total ** (1 / norm_type))
    return out


class GradientNormLogger(L.Callback):
    """Log the gradient norm of each layer / parameter group every ``every_n_steps`` optimizer steps,
    *before* clipping (so exploding gradients show), as ``{prefix}/{group}`` and ``{prefix}/total``.

    Works with any LightningModule. ``group_by``: ``module`` (default: per layer and per recurrent
    weight kind), ``parameter`` or ``top``. The values are also kept in ``self.history`` (a list of
    ``{"step": ..., group: norm}``), handy in scripts and notebooks without a logger.
    """

    def __init__(
        self, every_n_steps: int = 10, group_by: str = "module", prefix: str = "grad_norm", keep_history: bool = True
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        parameter_group("x.weight", group_by)  # validates group_by
        self.every_n_steps, self.group_by, self.prefix, self.keep_history = every_n_steps, group_by, prefix, keep_history
        self.history: List[Dict[str, float]] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        norms = grad_norms(pl_module, self.group_by)
        if not norms:
            return
        if self.keep_history:
            self.history.append({"step": trainer.global_step, **norms})
        pl_module.log_dict({f"{self.prefix}/{k}": v for k, v in norms.items()}, on_step=True, on_epoch=False)
