r"""xLSTM's two cells (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory", section 2), from
their equations: the sLSTM, a scalar memory with exponential gating and memory mixing, and the mLSTM,
a matrix memory with no recurrent weights.

Both gate with an **exponential** input gate :math:`i_t = e^{\tilde i_t}` and a forget gate
:math:`f_t = \sigma(\tilde f_t)` (the paper's "sigmoid or exponential"; the sigmoid here), kept in log
space, and a **stabiliser** state :math:`m_t` that keeps every exponential at most 1:

.. math::
    \log i_t = \tilde i_t, \quad \log f_t = \log\sigma(\tilde f_t), \quad
    m_t = \max(\log f_t + m_{t-1},\ \log i_t), \quad
    i'_t = e^{\log i_t - m_t}, \quad f'_t = e^{\log f_t + m_{t-1} - m_t}.

The stabilised ``c, n`` (or ``C, n``) are the paper's times :math:`e^{-m_t}`; the output, a ratio,
is unchanged by it.

**sLSTM** (eq. 8-17), state ``(h, c, n, m)``, each ``(B, H)``:

.. math::
    z_t &= \tanh(W_z x_t + R_z h_{t-1} + b_z), \quad o_t = \sigma(W_o x_t + R_o h_{t-1} + b_o)
    \quad (\tilde i_t, \tilde f_t \text{ alike}) \\
    c_t &= f'_t c_{t-1} + i'_t z_t, \quad n_t = f'_t n_{t-1} + i'_t, \quad h_t = o_t \odot c_t / n_t

The recurrent weights ``R`` are block-diagonal, one block per head (memory mixes inside a head only),
as in the paper. An empty memory (``n = 0``: the zero state) has no stabiliser yet: its
:math:`m_{t-1}` is taken as :math:`-\infty`, so :math:`m_t = \log i_t`, :math:`i'_t = 1` and
:math:`n_t = 1` (the reference code's ``if n == 0: m = i`` per unit); otherwise a large negative
:math:`\tilde i_1` would give ``n = 0`` and ``h = 0 / 0``. From then on :math:`n_t \ge 1`.

**mLSTM** (eq. 19-27), state ``(h, C, n, m)``: ``C`` ``(B, heads, d, d)``, ``n`` ``(B, heads, d)``,
``m`` ``(B, heads)``, ``h`` ``(B, H)`` (an output: the next step does not read it):

.. math::
    q_t &= W_q x_t + b_q, \quad k_t = (W_k x_t + b_k) / \sqrt d, \quad v_t = W_v x_t + b_v,
    \quad o_t = \sigma(W_o x_t + b_o) \\
    C_t &= f'_t C_{t-1} + i'_t\, v_t k_t^\top, \quad n_t = f'_t n_{t-1} + i'_t k_t, \quad
    h_t = o_t \odot C_t q_t / \max(|n_t^\top q_t|,\ e^{-m_t})

per head, with :math:`\tilde i_t, \tilde f_t` one scalar per head from :math:`x_t`, ``o`` one per
unit. :math:`\max(|n^\top q|, e^{-m})` is the stabilised :math:`\max(|\tilde n^\top q|, 1)`. No gate
reads :math:`h_{t-1}`, so a whole sequence is computed chunkwise-parallel (:mod:`zoo.xlstm_scan`).

**Heads.** :func:`num_heads`: head size 64 where 64 divides ``hidden_size`` (``hidden / 64`` heads),
otherwise one head of the whole width. **Initialisation** (chosen so memories start long): forget
biases ``linspace(3, 6)`` over the units (sLSTM) or heads (mLSTM), as the paper's code does
(``f = σ(3..6)``, 0.95 to 0.998); input biases :data:`INPUT_BIAS` ``= -1`` (``i = e^{-1}``, new
inputs enter gently); other biases 0; weights uniform in :math:`\pm 1/\sqrt{\text{fan-in}}`.
**Precision**: the gate arithmetic and the states are float32 even under autocast (in bfloat16
``f' = e^{...}`` near 1 rounds and ``C`` loses its slow decay); float64 stays float64.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import Gates, SequenceCell
from .sequences import step_loop
from .xlstm_scan import CHUNK, mlstm_chunkwise, readout

HEAD_SIZE = 64
FORGET_BIAS = (3.0, 6.0)  # linspace over units (sLSTM) or heads (mLSTM)
INPUT_BIAS = -1.0
NOT_EXPORTABLE = (
    "its state of four tensors (h, c, n, m) has no place in the exported step graphs, whose state "
    "inputs are h and an LSTM's c (zoo.graphs.state_inputs)"
)


def num_heads(hidden_size: int, head_size: int = HEAD_SIZE) -> int:
    """``hidden_size / head_size`` heads where ``head_size`` divides ``hidden_size``, else one head."""
    if isinstance(head_size, bool) or not isinstance(head_size, int) or head_size < 1:
        raise ValueError(f"head_size must be a positive integer, got {head_size!r}")
    return hidden_size // head_size if hidden_size % head_size == 0 else 1


def gate_dtype(*tensors: Tensor) -> torch.dtype:
    """float32, or wider if any of ``tensors`` is (float64 stays float64)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def stabilised_gates(log_i: Tensor, log_f: Tensor, m: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """``(i', f', m_t)``: ``m_t = max(log f_t + m_{t-1}, log i_t)``, ``i' = e^{log i_t - m_t}``,
    ``f' = e^{log f_t + m_{t-1} - m_t}``, both at most 1."""
    m_new = torch.maximum(log_f + m, log_i)
    return torch.exp(log_i - m_new), torch.exp(log_f + m - m_new), m_new


class SLSTMCell(SequenceCell):
    """``weight_ih`` stacks ``W_i, W_f, W_z, W_o`` (``4 H, input``), ``bias_ih`` their biases;
    ``weight_hh`` ``(heads, 4 d, d)`` is each head's block of ``R_i, R_f, R_z, R_o`` (``d = H / heads``)."""

    not_exportable = NOT_EXPORTABLE

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, head_size: int = HEAD_SIZE) -> None:
        super().__init__(input_size, hidden_size, bias)
        self.heads = num_heads(hidden_size, head_size)
        self.head_size = hidden_size // self.heads
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(self.heads, 4 * self.head_size, self.head_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight_ih, -1 / math.sqrt(self.input_size), 1 / math.sqrt(self.input_size))
        nn.init.uniform_(self.weight_hh, -1 / math.sqrt(self.head_size), 1 / math.sqrt(self.head_size))
        if self.bias_ih is not None:
            H = self.hidden_size
            with torch.no_grad():
                self.bias_ih.zero_()
                self.bias_ih[:H] = INPUT_BIAS
                self.bias_ih[H : 2 * H] = torch.linspace(*FORGET_BIAS, H)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", heads={self.heads}"

    def zero_state(self, batch: int, like: Tensor) -> Tuple[Tensor, ...]:
        h = like.new_zeros(batch, self.hidden_size)
        return h, torch.zeros_like(h), torch.zeros_like(h), torch.zeros_like(h)

    def recurrent(self, h: Tensor) -> Tensor:
        """``R h`` in the layout of ``weight_ih``'s rows (``i, f, z, o``), one block per head."""
        B, K, d = h.shape[0], self.heads, self.head_size
        r = torch.einsum("bkd,ked->bke", h.reshape(B, K, d), self.weight_hh.to(h.dtype))  # (B, K, 4 d)
        return r.reshape(B, K, 4, d).transpose(1, 2).reshape(B, 4 * K * d)

    def recur(self, x_proj: Tensor, state: Tuple[Tensor, ...]) -> Tuple[Tuple[Tensor, ...], Gates]:
        """One step after the input projection ``x_proj = W x_t + b``."""
        h, c, n, m = state
        pre = x_proj + self.recurrent(h)
        dtype = gate_dtype(pre, c)
        i_raw, f_raw, z_raw, o_raw = pre.to(dtype).chunk(4, dim=-1)
        c, n, m = c.to(dtype), n.to(dtype), m.to(dtype)
        log_i, log_f = i_raw, F.logsigmoid(f_raw)
        m = torch.where(n == 0, float("-inf"), m)  # an empty memory has no stabiliser yet
        i, f, m = stabilised_gates(log_i, log_f, m)
        z = torch.tanh(z_raw)
        o = torch.sigmoid(o_raw)
        c = f * c + i * z
        n = f * n + i
        h_new = o * c / n
        like = state[1].dtype
        return (h_new.to(h.dtype), c.to(like), n.to(like), m.to(like)), {"input": i, "forget": f, "output": o, "cell": c}

    def step(self, x: Tensor, state: Tuple[Tensor, ...]) -> Tuple[Tuple[Tensor, ...], Gates]:
        return self.recur(F.linear(x, self.weight_ih, self.bias_ih), state)

    def sequence(self, x: Tensor, state: Tuple[Tensor, ...], mask: Tensor | None = None):
        """The time loop of :meth:`recur`, with the input projection of every step hoisted out of it
        (one matmul); ``R h`` is the only matmul left inside."""
        x_proj = F.linear(x, self.weight_ih, self.bias_ih).transpose(0, 1)
        out, final, _ = step_loop(self.recur, x_proj, state, mask, False)
        return out, final


class MLSTMCell(SequenceCell):
    """``weight_ih`` stacks ``W_q, W_k, W_v, W_o`` (``H`` rows each) and ``W_i, W_f`` (one row per
    head): ``(4 H + 2 heads, input)``; ``bias_ih`` their biases. :attr:`chunk` is the speed path's
    chunk length ``L``."""

    not_exportable = NOT_EXPORTABLE

    chunk: int = CHUNK

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, head_size: int = HEAD_SIZE) -> None:
        super().__init__(input_size, hidden_size, bias)
        self.heads = num_heads(hidden_size, head_size)
        self.head_size = hidden_size // self.heads
        rows = 4 * hidden_size + 2 * self.heads
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight_ih, -1 / math.sqrt(self.input_size), 1 / math.sqrt(self.input_size))
        if self.bias_ih is not None:
            H, K = self.hidden_size, self.heads
            with torch.no_grad():
                self.bias_ih.zero_()
                self.bias_ih[4 * H : 4 * H + K] = INPUT_BIAS
                self.bias_ih[4 * H + K :] = torch.linspace(*FORGET_BIAS, K)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", heads={self.heads}"

    def zero_state(self, batch: int, like: Tensor) -> Tuple[Tensor, ...]:
        K, d = self.heads, self.head_size
        return (
            like.new_zeros(batch, self.hidden_size),
            like.new_zeros(batch, K, d, d),
            like.new_zeros(batch, K, d),
            like.new_zeros(batch, K),
        )

    def project(self, x: Tensor) -> Tuple[Tensor, ...]:
        """``(q, k, v, o, log i, log f)`` for any leading shape of ``x``: everything that does not read
        the state. ``q, k, v`` ``(..., heads, d)`` with ``k`` scaled by ``1/sqrt(d)``; ``o`` ``(..., H)``;
        ``log i, log f`` ``(..., heads)``; float32 or wider."""
        H, K, d = self.hidden_size, self.heads, self.head_size
        proj = F.linear(x, self.weight_ih, self.bias_ih)
        proj = proj.to(gate_dtype(proj))
        q, k, v, o, i_raw, f_raw = proj.split([H, H, H, H, K, K], dim=-1)
        heads = (*x.shape[:-1], K, d)
        return (q.reshape(heads), k.reshape(heads) / math.sqrt(d), v.reshape(heads), torch.sigmoid(o), i_raw, F.logsigmoid(f_raw))

    def step(self, x: Tensor, state: Tuple[Tensor, ...]) -> Tuple[Tuple[Tensor, ...], Gates]:
        h, C, n, m = state
        q, k, v, o, log_i, log_f = self.project(x)
        dtype = gate_dtype(q, C)
        C, n, m = C.to(dtype), n.to(dtype), m.to(dtype)
        i, f, m = stabilised_gates(log_i, log_f, m)
        C = f[..., None, None] * C + i[..., None, None] * (v.unsqueeze(-1) * k.unsqueeze(-2))  # f' C + i' v k^T
        n = f[..., None] * n + i[..., None] * k
        h_tilde = readout(torch.einsum("bkij,bkj->bki", C, q), (n * q).sum(-1), m)  # C q / max(|n^T q|, e^{-m})
        h_new = o * h_tilde.reshape(h.shape)
        like = state[1].dtype
        return (h_new.to(h.dtype), C.to(like), n.to(like), m.to(like)), {"input": i, "forget": f, "output": o}

    def sequence(self, x: Tensor, state: Tuple[Tensor, ...], mask: Tensor | None = None):
        """Every step at once by :func:`zoo.xlstm_scan.mlstm_chunkwise`; a padded step gets
        ``log f = 0, log i = -inf`` (the state passes it unchanged) and a zero output."""
        h0, C, n, m = state
        q, k, v, o, log_i, log_f = self.project(x)  # (B, T, K, d), (B, T, H), (B, T, K)
        if mask is not None:
            keep = mask.unsqueeze(-1)
            log_i, log_f = torch.where(keep, log_i, float("-inf")), torch.where(keep, log_f, 0.0)
        dtype = gate_dtype(q, C)
        heads_first = [t.transpose(1, 2) for t in (q, k, v, log_i, log_f)]
        h_tilde, (C, n, m) = mlstm_chunkwise(*heads_first, (C.to(dtype), n.to(dtype), m.to(dtype)), self.chunk)
        out = (o * h_tilde.transpose(1, 2).reshape(o.shape)).to(h0.dtype)
        if mask is None:
            last = out[:, -1]
        else:
            out = torch.where(mask.unsqueeze(-1), out, 0.0)
            lengths = mask.sum(1)
            last = torch.where((lengths > 0).unsqueeze(-1), out[torch.arange(out.shape[0]), (lengths - 1).clamp(min=0)], h0)
        like = state[1].dtype
        return out, (last, C.to(like), n.to(like), m.to(like))
