r"""S6, Mamba's selective state space layer (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces", Algorithm 2): a diagonal state space model whose step size ``Δ`` and input
and output maps ``B``, ``C`` are functions of the input.

.. math::
    u_t &= W_u x_t + b_u                                          \quad\text{the layer's input} \\
    \Delta_t &= \mathrm{softplus}(W_\Delta^{\uparrow} W_\Delta^{\downarrow} u_t + b_\Delta)
                                                                  \quad\text{step size, per unit} \\
    B_t &= W_B u_t, \quad C_t = W_C u_t                           \quad\text{input and output maps, } N \\
    A &= -\exp(A_{\log})                                          \quad\text{diagonal, } (\text{hidden}, N) \\
    \bar A_t &= \exp(\Delta_t A), \quad \bar B_t u_t \approx \Delta_t B_t u_t
                                                                  \quad\text{zero-order hold; Euler for } B \\
    h_t &= \bar A_t \odot h_{t-1} + (\Delta_t u_t) B_t^\top       \quad\text{state, } (\text{hidden}, N) \\
    y_t &= h_t C_t + D \odot u_t                                  \quad\text{output, hidden}

Every unit ``d`` of ``u`` drives its own ``N``-dimensional diagonal system; ``B_t``, ``C_t`` (``N``) are
shared by the units, ``Δ_t`` is one step size per unit: a large ``Δ`` resets the unit's state to the
current input, a small one keeps it (the *selection*). The state is ``(y, h)``: ``y`` ``(batch, hidden)``
the last output (first, so that every tool reading a state's ``h`` reads the layer's output) and ``h``
``(batch, hidden, N)``; ``y`` is not read by the next step.

Defaults as Mamba's: ``N = 16`` (:data:`STATE_SIZE`), ``Δ``'s rank ``ceil(hidden / 16)``
(:data:`DT_RANK_DIVISOR`; Mamba's ``dt_rank="auto"`` divides its block's model width, half of the
``2x``-expanded width its S6 runs at, so at the same S6 width its rank is half of this one), ``A`` initialised S4D-real (``A_n = -(n + 1)``, ``n = 0 .. N-1``), ``D = 1``,
``b_Δ`` the inverse softplus of step sizes spread log-uniformly over ``[0.001, 0.1]`` (Mamba draws them
from that distribution; here they are its quantiles, as the zoo's other spread initialisations, so
nothing is drawn from torch's random stream for them).

The layer is S6 alone, not Mamba's block: no causal convolution before it and no output gate
``y ⊙ silu(z)`` after it. The issue asks for the selective SSM beside the classic cells, and
:class:`~zoo.recurrent.Recurrent` stacks every family the same way (input projection, recurrence,
next layer), as :mod:`zoo.rglru` keeps Griffin's RG-LRU without its block's convolution and gate
branch; the convolution would also add its last 3 inputs to the carried state, the gate a second
``hidden x input`` matrix. ``W_u`` is the block's input projection (Mamba's ``in_proj``, its ``x``
half), so input and hidden sizes may differ; ``bias`` is its ``b_u`` (Mamba's has none: ``bias=False``).
There is no normalisation either: a layer's output grows with about the cube of its input's scale
(``Δ``, ``B`` and ``u`` each grow with it), which Mamba's RMSNorm between blocks absorbs. One layer is
finite for inputs of scale 1000 and two for scale 100 (tests/family_checks.py); two layers overflow
float32 at 1000 (NaN outputs).

The speed path is :func:`zoo.selective_scan.selective_scan` (chunked; what it keeps in memory is in its
docstring). Parameters: ``weight_u``, ``bias_u`` (``W_u``, ``b_u``); ``weight_dbc`` stacks
``W_Δ↓`` (rank x hidden), ``W_B``, ``W_C`` (``N x hidden`` each: Mamba's ``x_proj``); ``weight_dt``,
``bias_dt`` (``W_Δ↑`` hidden x rank and ``b_Δ``: Mamba's ``dt_proj``); ``A_log`` and ``D``.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import Gates, SequenceCell
from .selective_scan import selective_scan

STATE_SIZE = 16  # N, Mamba's d_state
DT_RANK_DIVISOR = 16  # Δ's rank: ceil(hidden / 16), as Mamba's dt_rank="auto" divides its model width
DT_RANGE = (0.001, 0.1)  # Δ at initialisation, Mamba's dt_min and dt_max
DT_FLOOR = 1e-4  # Mamba's dt_init_floor


class S6Cell(SequenceCell):
    """Mamba's S6 (module docstring); the state is ``(y (batch, hidden), h (batch, hidden, N))``."""

    not_exportable = (
        "its step does not trace under torch.export's scan (dynamo: 'always_classified is "
        "unsupported', measured with torch 2.14.1; not investigated further)"
    )

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias)
        H, N = hidden_size, STATE_SIZE
        self.state_size, self.dt_rank = N, math.ceil(H / DT_RANK_DIVISOR)
        self.weight_u = nn.Parameter(torch.empty(H, input_size))
        self.bias_u = nn.Parameter(torch.empty(H)) if bias else None
        self.weight_dbc = nn.Parameter(torch.empty(self.dt_rank + 2 * N, H))
        self.weight_dt = nn.Parameter(torch.empty(H, self.dt_rank))
        self.bias_dt = nn.Parameter(torch.empty(H))
        self.A_log = nn.Parameter(torch.empty(H, N))
        self.D = nn.Parameter(torch.empty(H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight in (self.weight_u, self.weight_dbc):  # nn.Linear's bound, 1 / sqrt(fan_in)
            nn.init.uniform_(weight, -1 / math.sqrt(weight.shape[1]), 1 / math.sqrt(weight.shape[1]))
        if self.bias_u is not None:
            nn.init.zeros_(self.bias_u)
        nn.init.uniform_(self.weight_dt, -(self.dt_rank**-0.5), self.dt_rank**-0.5)  # Mamba's dt_init="random"
        with torch.no_grad():
            lo, hi = DT_RANGE
            quantiles = (torch.arange(self.hidden_size, dtype=torch.float64) + 0.5) / self.hidden_size
            dt = torch.exp(math.log(lo) + quantiles * (math.log(hi) - math.log(lo))).clamp(min=DT_FLOOR)
            self.bias_dt.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^{-1}(dt)
            n = torch.arange(1, self.state_size + 1, dtype=torch.float64)
            self.A_log.copy_(torch.log(n).expand(self.hidden_size, -1))  # S4D-real: A_n = -(n + 1)
            self.D.fill_(1.0)

    def zero_state(self, batch: int, like: Tensor) -> Tuple[Tensor, Tensor]:
        return like.new_zeros(batch, self.hidden_size), like.new_zeros(batch, self.hidden_size, self.state_size)

    def selection(self, x: Tensor, dtype: torch.dtype) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(u_t, Δ_t, B_t, C_t)`` for any leading shape of ``x``, in the state's ``dtype``:
        everything that does not read the state."""
        u = F.linear(x, self.weight_u, self.bias_u)
        dt, B, C = F.linear(u, self.weight_dbc).split([self.dt_rank, self.state_size, self.state_size], -1)
        delta = F.softplus(F.linear(dt, self.weight_dt, self.bias_dt))
        return u.to(dtype), delta.to(dtype), B.to(dtype), C.to(dtype)

    def step(self, x: Tensor, state: Tuple[Tensor, Tensor]) -> Tuple[Tuple[Tensor, Tensor], Gates]:
        _, h = state
        u, delta, B, C = self.selection(x, h.dtype)
        A = -torch.exp(self.A_log)
        A_bar = torch.exp(delta.unsqueeze(-1) * A)
        h = A_bar * h + (delta * u).unsqueeze(-1) * B.unsqueeze(1)
        y = (h * C.unsqueeze(1)).sum(-1) + self.D * u
        return (y, h), {"delta": delta}

    def sequence(
        self, x: Tensor, state: Tuple[Tensor, Tensor], mask: Tensor | None = None
    ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        """Every step at once by :func:`zoo.selective_scan.selective_scan`; the final ``y`` is the
        output of each sequence's last real step (the carried one where it has none)."""
        y0, h0 = state
        u, delta, B, C = self.selection(x, h0.dtype)
        y, h = selective_scan(u, delta, -torch.exp(self.A_log), B, C, self.D, h0, mask)
        if mask is None:
            return y, (y[:, -1], h)
        steps = torch.arange(x.shape[1], device=x.device)
        last = torch.where(mask, steps, -1).amax(1)  # each sequence's last real step, -1 for none
        final = y.gather(1, last.clamp(min=0).view(-1, 1, 1).expand(-1, 1, y.shape[-1])).squeeze(1)
        return y, (torch.where((last >= 0).unsqueeze(-1), final, y0), h)
