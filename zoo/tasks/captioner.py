"""`ImageCaptioner`: one-to-many — an image in, a sentence out, one word per step.

The encoder is any timm model (:class:`~zoo.encoders.ImageEncoder`): a feature grid ``a = (a_1..a_L)``,
``L`` locations of ``C`` channels (optionally projected to ``feature_dim`` by a learned per-location
layer). The decoder is a recurrent cell of any family (``rnn`` | ``gru`` | ``lstm``). Three ways to
connect them:

``attention: none`` — Show and Tell (Vinyals et al. 2015)::

    h_0 = W_h mean_i(a_i)    (c_0 = W_c mean_i(a_i))        the image only sets the initial state
    h_t = RNN(E y_{t-1}, h_{t-1});  p(y_t) = softmax(W_o h_t)

``attention: soft`` — Show, Attend and Tell (Xu et al. 2015)::

    h_0, c_0 = tanh(W_init mean_i(a_i))
    alpha_t  = softmax_i(v^T tanh(W_a a_i + W_h h_{t-1}))   additive attention, zoo.attention
    beta_t   = sigmoid(f_beta(h_{t-1}))                     the gating scalar
    z_t      = beta_t * sum_i alpha_ti a_i
    h_t      = RNN([E y_{t-1}; z_t], h_{t-1})
    p(y_t)   = softmax(L_o(E y_{t-1} + L_h h_t + L_z z_t))  the "deep output" layer
    loss     = -log p(y | a) + lambda * sum_i (1 - sum_t alpha_ti)^2   doubly stochastic attention

``attention: hard`` — the same, but ``z_t = a_{s_t}`` with ``s_t ~ Categorical(alpha_t)``; trained by
REINFORCE on the variational lower bound (section 4.1)::

    grad = d/dW log p(y | s, a)
         + lambda_r (R - b) d/dW log p(s | a)     R = log p(y | s, a) / |y|, b: its moving average
         + lambda_e d/dW H[s]                                    entropy bonus
    and, per sequence with probability 0.5, s is set to its expectation alpha (soft attention).
    One change from the paper: the reward R is the log-likelihood per word, not per caption, so that
    the baseline compares captions of different lengths fairly (see ``losses``).

Two options beyond the papers, both off by default: ``decoder: luong`` moves attention after the
cell step (Luong et al. 2015: the cell reads the word, alpha_t comes from h_t, the context feeds the
output only), so a word sees the image only through its own step's attention; ``coordinates: true``
appends each location's (x, y) to its features, so attention can select by position. The ShapesCaptions
recipe uses both (docs/results.md, "One-to-many", says why).

Decoding (greedy or batched beam search) comes from :mod:`zoo.decoding` and returns the attention
weights of every generated word, drawn over the image by :func:`attention_figure` — the paper's
figure — by ``zoo caption --ckpt PATH image.jpg`` and, during validation, logged to W&B.

With a frozen encoder (``trainable: false``) the datamodule's images are replaced by encoder features
computed once and cached on disk (see ``datamodules/coco_captions.py``): later epochs and runs never
run the CNN.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.attention import Attention, attention_entropy, hard_attention
from zoo.cells import cell_class
from zoo.decoding import Decoded, beam_search, greedy_decode
from zoo.encoders import ImageEncoder
from zoo.metrics import caption_metrics, normalize_caption
from zoo.recurrent import Recurrent
from zoo.tasks.base import TaskModule, decay_groups

ATTENTION_KINDS = ("none", "soft", "hard")
DECODERS = ("sat", "luong")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3  # datamodules.text's special tokens


def reinforce_loss(log_likelihood: Tensor, log_prob_samples: Tensor, baseline: float | Tensor, weight: Optional[Tensor] = None) -> Tensor:
    """The REINFORCE surrogate whose gradient is ``-(R - b) d/dW log p(s)`` per sequence, averaged.

    ``log_likelihood`` ``R = log p(y | s, a)`` (B,), treated as a constant reward; ``log_prob_samples``
    ``log p(s | a) = sum_t log alpha_{t, s_t}`` (B,) carries the gradient; ``weight`` (B,) masks the
    sequences that did not sample. Minimising it raises the probability of locations that led to a
    better-than-baseline caption and lowers it for worse ones."""
    advantage = (log_likelihood - baseline).detach()
    terms = -advantage * log_prob_samples
    if weight is not None:
        terms = terms * weight
    return terms.mean()


def doubly_stochastic_penalty(alphas: Tensor, step_mask: Tensor) -> Tensor:
    """``sum_i (1 - sum_t alpha_ti)^2`` per sequence ``(B,)``: ``alphas`` (B, T, L), ``step_mask`` (B, T)
    True on real steps (padding steps do not count)."""
    coverage = (alphas * step_mask.unsqueeze(-1)).sum(1)
    return ((1.0 - coverage) ** 2).sum(-1)


def grid_shape(locations: int) -> Tuple[int, int]:
    """``(h, w)`` of a square feature grid with ``locations`` cells (``(1, L)`` if not square)."""
    side = math.isqrt(locations)
    return (side, side) if side * side == locations else (1, locations)


def grid_coordinates(locations: int, like: Tensor) -> Tensor:
    """``(1, L, 2)``: the (x, y) of every grid location (row-major), each in [-1, 1]."""
    h, w = grid_shape(locations)
    ys = torch.linspace(-1, 1, h, device=like.device, dtype=like.dtype) if h > 1 else like.new_zeros(1)
    xs = torch.linspace(-1, 1, w, device=like.device, dtype=like.dtype) if w > 1 else like.new_zeros(1)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], -1).unsqueeze(0)


def weights_key(module: nn.Module, name: str) -> str:
    """A key naming an encoder and its exact weights (part of the feature-cache key)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{name}:{digest.hexdigest()[:16]}"


class ImageCaptioner(TaskModule):
    def __init__(
        self,
        tokenizer_json: Optional[str] = None,
        image_config: Optional[Dict[str, Any]] = None,
        encoder: str = "resnet101",
        pretrained: bool = True,
        trainable: bool = False,
        weights_path: Optional[str] = None,
        attention: str = "soft",
        decoder: str = "sat",
        cell: str = "lstm",
        embedding_dim: int = 512,
        hidden_size: int = 512,
        attention_dim: int = 512,
        feature_dim: Optional[int] = None,
        feature_layers: int = 1,
        coordinates: bool = False,
        dropout: float = 0.5,
        gate: bool = True,
        doubly_stochastic: float = 1.0,
        hard_reinforce: float = 1.0,
        hard_entropy: float = 0.01,
        hard_baseline_decay: float = 0.9,
        hard_soft_mix: float = 0.5,
        lr: float = 4e-4,
        encoder_lr: float = 1e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        grad_clip: Optional[float] = 5.0,
        beam_size: int = 3,
        length_penalty: float = 0.0,
        max_len: Optional[int] = None,
        cache_features: bool = True,
        log_images: int = 4,
    ) -> None:
        """
        Args:
            tokenizer_json: the caption tokenizer (``datamodules.text``); ``None`` = the datamodule's, at setup.
            image_config: the image preprocessing (size, crop, mean, std; ``None`` = the datamodule's).
            encoder, pretrained, trainable, weights_path: the timm backbone (see :class:`ImageEncoder`);
                ``trainable: false`` freezes it and lets the datamodule cache its features.
            attention: ``none`` (Show and Tell) | ``soft`` | ``hard`` (Show, Attend and Tell).
            decoder: where attention sits in a step (soft/hard). ``sat`` (Xu et al.): alpha_t from
                h_{t-1}, the context goes into the cell and the output. ``luong`` (Luong et al. 2015,
                no input feeding): the cell reads the word first, alpha_t comes from h_t, and the context
                goes into the output only — the word of step t can only see the image through the
                attention of step t (no looking one step early and remembering).
            cell: decoder cell family ``rnn`` | ``gru`` | ``lstm``.
            embedding_dim, hidden_size, attention_dim: word embedding, decoder state, attention MLP widths.
            feature_dim: project each grid location to this size with a learned LayerNorm + Linear + ReLU
                (``None``: use the encoder's channels as they are).
            feature_layers: Linear + ReLU layers in that projection (2 = a small MLP per location).
            coordinates: append each location's (x, y) in [-1, 1] to its features (before the
                projection), so attention can pick a place by position, not only by content ("the
                top-left object", "above"). Off in the paper; CNN features carry position only
                weakly (through padding), and a frozen random CNN hardly at all.
            dropout: before the output layer.
            gate: the gating scalar beta on the context (soft/hard).
            doubly_stochastic: lambda of ``sum_i (1 - sum_t alpha_ti)^2`` (soft; 0 = off). The paper's
                per-sequence objective is divided by the mean caption length, like the word loss.
            hard_reinforce, hard_entropy, hard_baseline_decay, hard_soft_mix: REINFORCE weight lambda_r,
                entropy bonus lambda_e, moving-average baseline decay, and the probability that a
                sequence uses the expectation alpha instead of a sample (0.5 in the paper).
            lr, encoder_lr, weight_decay, warmup_steps, min_lr_ratio: AdamW (encoder_lr for a trainable
                encoder), linear warm-up then cosine.
            grad_clip: global gradient-norm clipping (``None`` = off).
            beam_size, length_penalty: decoding at validation/test/inference (1 = greedy); GNMT alpha.
            max_len: longest caption generated (default: the datamodule's max_caption_len + 1).
            cache_features: with a frozen encoder, ask the datamodule to cache encoder features.
            log_images: attention figures logged per validation (0 = none).
        """
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        cell_class(cell)  # validates the name
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        self.save_hyperparameters()
        # The pretrained weights are fetched later (setup, or first use): a run whose data is missing
        # says so before anything is downloaded. A checkpoint's state dict replaces them anyway.
        self.encoder = ImageEncoder(encoder, False, trainable, None)
        self._needs_pretrained = bool(pretrained or weights_path)
        C = self.encoder.out_channels
        extra = 2 if coordinates else 0
        M = feature_dim or C + extra
        self.norm = nn.LayerNorm(C) if feature_dim else nn.Identity()
        layers: List[nn.Module] = []
        for k in range(max(1, feature_layers) if feature_dim else 0):
            layers += [nn.Linear(C + extra if k == 0 else M, M), nn.ReLU()]
        self.project = nn.Sequential(*layers) if layers else nn.Identity()
        self.memory_size = M
        self.register_buffer("baseline", torch.zeros(()), persistent=True)  # hard attention's moving average
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool), persistent=True)
        self.tokenizer = None
        self._val: Dict[str, List] = {}
        if tokenizer_json is not None:
            self._build(tokenizer_json)

    # ---- building ----------------------------------------------------------------------------------
    def _build(self, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        hp = self.hparams
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        V = self.tokenizer.get_vocab_size()
        E, H, M = hp.embedding_dim, hp.hidden_size, self.memory_size
        self.vocab_size = V
        self.embed = nn.Embedding(V, E, padding_idx=PAD_ID)
        self.drop = nn.Dropout(hp.dropout)
        n_state = 2 if hp.cell == "lstm" else 1
        if hp.attention == "none":
            self.init_state = nn.Linear(M, n_state * H)  # pooled vector x W -> h_0 (and c_0)
            self.rnn = Recurrent(E, H, hp.cell)
            self.out = nn.Linear(H, V)
        else:
            self.init_state = nn.Linear(M, n_state * H)  # then tanh, as the paper's init MLPs
            self.attend = Attention(H, M, "additive", hp.attention_dim)
            self.beta = nn.Linear(H, 1) if hp.gate else None
            cell_cls = cell_class(hp.cell)
            self.cell = cell_cls(E + M if hp.decoder == "sat" else E, H)
            self.out_h = nn.Linear(H, E)
            self.out_z = nn.Linear(M, E)
            self.out = nn.Linear(E, V)

    def load_pretrained_encoder(self) -> None:
        """Load the encoder's pretrained weights (timm's, or ``weights_path``) if not done yet."""
        if not self._needs_pretrained:
            return
        hp = self.hparams
        source = ImageEncoder(hp.encoder, hp.pretrained, hp.trainable, hp.weights_path)
        self.encoder.load_state_dict(source.state_dict())
        self._needs_pretrained = False

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._needs_pretrained = False  # the encoder's weights come with the state dict
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def setup(self, stage: str) -> None:
        self.load_pretrained_encoder()
        # Sharp attention leaves weights like 1e-40: subnormal floats, which make CPU matmuls several
        # times slower (measured: 3x per training step). Flushing them to zero changes nothing that
        # matters; it is process-wide and only where the CPU supports it.
        torch.set_flush_denormal(True)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_tok = getattr(datamodule, "tokenizer_json", None)
        if self.hparams.tokenizer_json is None:
            if data_tok is None:
                raise ValueError("ImageCaptioner needs a caption tokenizer: pass tokenizer_json, or train with a caption datamodule")
            self.hparams.tokenizer_json = data_tok  # lands in the checkpoint: it rebuilds itself
            self._build(data_tok)
        elif data_tok is not None and data_tok != self.hparams.tokenizer_json:
            from tokenizers import Tokenizer

            if Tokenizer.from_str(data_tok).get_vocab() != self.tokenizer.get_vocab():
                raise ValueError("the model's caption vocabulary differs from the datamodule's: this model cannot be trained or evaluated on this data")
        if self.hparams.image_config is None and datamodule is not None:
            self.hparams.image_config = dict(getattr(datamodule, "image_config", {}) or {}) or None
        if self.hparams.max_len is None:
            self.hparams.max_len = int(getattr(datamodule, "max_caption_len", 20)) + 1
        data_encoder = getattr(datamodule, "encoder_name", None)
        if data_encoder and data_encoder != self.hparams.encoder:
            warnings.warn(
                f"the datamodule prepares images for encoder {data_encoder!r} but the model's encoder is "
                f"{self.hparams.encoder!r}: the input size and normalization may not fit; set both to the same name"
            )

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        # The encoder's weights are in the state dict: rebuilding from the checkpoint must not fetch them.
        hp = checkpoint.get("hyper_parameters")
        if hp is not None:
            hp["pretrained"] = False
            hp["weights_path"] = None

    # ---- feature cache ----------------------------------------------------------------------------
    def _attach_cache(self) -> None:
        hp = self.hparams
        datamodule = getattr(self.trainer, "datamodule", None)
        if hp.trainable or not hp.cache_features or not hasattr(datamodule, "attach_features"):
            return
        if self.trainer.fast_dev_run:  # a smoke test touches a batch or two: encoding them is cheaper
            return
        key = weights_key(self.encoder, hp.encoder)
        strategy = self.trainer.strategy

        def encode(images: Tensor) -> Tensor:
            self.encoder.eval()
            return self.encoder(images)[0]

        if self.trainer.is_global_zero:
            datamodule.attach_features(encode, key, device=self.device)
        strategy.barrier("zoo-feature-cache")
        if not self.trainer.is_global_zero:
            datamodule.attach_features(encode, key, device=self.device, build=False)

    def on_fit_start(self) -> None:
        self._attach_cache()

    def on_validation_start(self) -> None:
        if self.trainer.state.fn != "fit":
            self._attach_cache()

    def on_test_start(self) -> None:
        self._attach_cache()

    # ---- the model ---------------------------------------------------------------------------------
    def memory(self, batch: Dict[str, Tensor]) -> Tensor:
        """The (adapted) feature grid ``(B, L, M)`` from ``images`` or cached ``features``."""
        if "features" in batch:
            grid = batch["features"].to(self.adapt_dtype)
        else:
            self.load_pretrained_encoder()
            grid = self.encoder(batch["images"])[0]
        grid = self.norm(grid)
        if self.hparams.coordinates:
            grid = torch.cat([grid, grid_coordinates(grid.shape[1], grid).expand(grid.shape[0], -1, -1)], -1)
        return self.project(grid)

    @property
    def adapt_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def initial_state(self, memory: Tensor):
        H = self.hparams.hidden_size
        pooled = memory.mean(1)
        init = self.init_state(pooled)
        if self.hparams.attention != "none":
            init = torch.tanh(init)
        if self.hparams.cell == "lstm":
            return init[:, :H], init[:, H:]
        return init

    def attend_step(self, words: Tensor, state, memory: Tensor, keys: Tensor, mode: str = "soft", use_soft: Optional[Tensor] = None):
        """One decoder step with attention. ``words`` (N, E) embedded previous words. ``mode``: ``soft``
        (expected context), ``sample`` (hard: sample a location; rows where ``use_soft`` keep the
        expectation) or ``argmax`` (hard, deterministic). Returns ``(logits, state, alpha, log p(s))``."""
        luong = self.hparams.decoder == "luong"
        if luong:  # the cell reads the word first; attention asks with the new state
            state = self.cell(words, state)
        h = state[0] if isinstance(state, tuple) else state
        context, alpha = self.attend(h, memory, None, projected=keys)
        log_p = None
        if mode == "sample":
            z, _, log_p = hard_attention(alpha, memory, sample=True)
            if use_soft is not None:
                z = torch.where(use_soft.unsqueeze(1), context, z)
        elif mode == "argmax":
            z, _, _ = hard_attention(alpha, memory, sample=False)
        else:
            z = context
        if self.beta is not None:
            z = torch.sigmoid(self.beta(h)) * z
        if not luong:
            state = self.cell(torch.cat([words, z], -1), state)
            h = state[0] if isinstance(state, tuple) else state
        logits = self.out(self.drop(words + self.out_h(h) + self.out_z(z)))
        return logits, state, alpha, log_p

    def forward(self, batch: Dict[str, Tensor], mode: Optional[str] = None) -> Dict[str, Tensor]:
        """Teacher forcing: ``logits`` (B, T-1, V) for ``ids[:, 1:]`` given ``ids[:, :-1]``; with attention
        also ``alphas`` (B, T-1, L) and, when sampling, ``log_p_s`` (B, T-1) and ``use_soft`` (B,)."""
        memory = self.memory(batch)
        inputs = self.embed(batch["ids"][:, :-1])
        state = self.initial_state(memory)
        out: Dict[str, Tensor] = {}
        if self.hparams.attention == "none":
            lstm = isinstance(state, tuple)
            init = (state[0].unsqueeze(0), state[1].unsqueeze(0)) if lstm else state.unsqueeze(0)
            hidden = self.rnn(inputs, lengths=batch["lengths"] - 1, state=init).output
            out["logits"] = self.out(self.drop(hidden))
            return out
        if mode is None:
            mode = "soft" if self.hparams.attention == "soft" else ("sample" if self.training else "argmax")
        keys = self.attend.project(memory)
        use_soft = None
        if mode == "sample":
            use_soft = torch.rand(memory.shape[0], device=memory.device) < self.hparams.hard_soft_mix
            out["use_soft"] = use_soft
        logits, alphas, log_ps = [], [], []
        for t in range(inputs.shape[1]):
            step_logits, state, alpha, log_p = self.attend_step(inputs[:, t], state, memory, keys, mode, use_soft)
            logits.append(step_logits)
            alphas.append(alpha)
            if log_p is not None:
                log_ps.append(log_p)
        out["logits"] = torch.stack(logits, 1)
        out["alphas"] = torch.stack(alphas, 1)
        if log_ps:
            out["log_p_s"] = torch.stack(log_ps, 1)
        return out

    def losses(self, batch: Dict[str, Tensor], out: Dict[str, Tensor]) -> Dict[str, Tensor]:
        targets = batch["ids"][:, 1:]
        step_mask = targets != PAD_ID
        nll_tokens = F.cross_entropy(out["logits"].flatten(0, 1).float(), targets.flatten(), reduction="none", ignore_index=PAD_ID).view_as(targets)
        tokens = step_mask.sum().clamp_min(1)
        per_seq_tokens = tokens / targets.shape[0]  # the paper's per-sequence terms are scaled by this
        nll = nll_tokens.sum() / tokens
        result = {"nll": nll, "loss": nll}
        hp = self.hparams
        if "alphas" in out and hp.attention == "soft" and hp.doubly_stochastic > 0:
            ds = doubly_stochastic_penalty(out["alphas"], step_mask).mean() / per_seq_tokens
            result["doubly_stochastic"] = ds
            result["loss"] = result["loss"] + hp.doubly_stochastic * ds
        if "log_p_s" in out:
            sampled = (~out["use_soft"]).float()
            # log p(y | s, a) per word of each caption. The paper's reward is the sum over words; with
            # one moving-average baseline for all captions, that sum mostly says how long a caption is
            # (3-13 words here), and REINFORCE then pushes attention away from the objects of long
            # captions: measured, the argmax left every object (0% in box). Per word, it does not.
            reward = -nll_tokens.sum(1) / step_mask.sum(1).clamp_min(1)
            log_p_s = (out["log_p_s"] * step_mask).sum(1)
            if self.training:
                with torch.no_grad():
                    mean_reward = reward[sampled.bool()].mean() if sampled.any() else reward.mean()
                    if not bool(self.baseline_ready):
                        self.baseline.copy_(mean_reward)
                        self.baseline_ready.fill_(True)
            reinforce = reinforce_loss(reward, log_p_s, self.baseline, sampled) / per_seq_tokens
            entropy = (attention_entropy(out["alphas"]) * step_mask).sum(1).mean() / per_seq_tokens
            result.update(reinforce=reinforce, entropy=entropy)
            result["loss"] = result["loss"] + hp.hard_reinforce * reinforce - hp.hard_entropy * entropy
            if self.training:
                with torch.no_grad():
                    decay = hp.hard_baseline_decay
                    self.baseline.mul_(decay).add_((1 - decay) * mean_reward)
        return result

    # ---- decoding ----------------------------------------------------------------------------------
    def _decode_memory(self, memory: Tensor, beam_size: Optional[int] = None, max_len: Optional[int] = None) -> Decoded:
        hp = self.hparams
        beam_size = beam_size or hp.beam_size
        max_len = max_len or hp.max_len or 21
        B = memory.shape[0]
        K = beam_size if beam_size > 1 else 1
        banned = torch.tensor([PAD_ID, BOS_ID, UNK_ID], device=memory.device)
        state = self.initial_state(memory)
        if hp.attention == "none":
            lstm = isinstance(state, tuple)

            def step(tokens, state):
                init = (state[0].unsqueeze(0).contiguous(), state[1].unsqueeze(0).contiguous()) if lstm else state.unsqueeze(0).contiguous()
                out = self.rnn(self.embed(tokens).unsqueeze(1), state=init)
                new = (out.state[0][0], out.state[1][0]) if lstm else out.state[0]
                log_probs = torch.log_softmax(self.out(out.output[:, 0]).float(), -1).index_fill(-1, banned, float("-inf"))
                return log_probs, new, {}

        else:
            mem = memory.repeat_interleave(K, 0) if K > 1 else memory
            keys = self.attend.project(mem)
            mode = "soft" if hp.attention == "soft" else "argmax"

            def step(tokens, state):
                logits, new, alpha, _ = self.attend_step(self.embed(tokens), state, mem, keys, mode)
                log_probs = torch.log_softmax(logits.float(), -1).index_fill(-1, banned, float("-inf"))
                return log_probs, new, {"attention": alpha}

        if K == 1:
            return greedy_decode(step, state, B, BOS_ID, EOS_ID, max_len, PAD_ID, memory.device)
        return beam_search(step, state, B, BOS_ID, EOS_ID, max_len, beam_size=K, alpha=hp.length_penalty, pad_id=PAD_ID, device=memory.device)

    def words(self, tokens: Sequence[int]) -> List[str]:
        """Token ids → words, stopping at ``<eos>``."""
        out = []
        for t in tokens:
            t = int(t)
            if t == EOS_ID:
                break
            if t in (PAD_ID, BOS_ID):
                continue
            out.append(self.tokenizer.id_to_token(t))
        return out

    @torch.no_grad()
    def generate(self, batch: Dict[str, Tensor], beam_size: Optional[int] = None, max_len: Optional[int] = None) -> List[Dict[str, Any]]:
        """Caption a batch (``images`` or ``features``): per image ``{"words", "caption", "attention"
        (n_words, L) or None, "score"}`` — the attention row of each word, ``<eos>`` left out."""
        was_training = self.training
        self.eval()
        decoded = self._decode_memory(self.memory(batch), beam_size, max_len)
        self.train(was_training)
        results = []
        for b in range(decoded.tokens.shape[0]):
            words = self.words(decoded.tokens[b])
            attention = decoded.extras["attention"][b, : len(words)].float().cpu() if "attention" in decoded.extras else None
            results.append({"words": words, "caption": " ".join(words), "attention": attention, "score": float(decoded.scores[b])})
        return results

    @torch.no_grad()
    def caption_images(self, images: Sequence[Any], beam_size: Optional[int] = None) -> List[Dict[str, Any]]:
        """Caption PIL images (or paths): the preprocessing recorded at training time is applied."""
        from datamodules.coco_captions import ImageConfig, load_image

        config = ImageConfig(**(self.hparams.image_config or {})) if self.hparams.image_config else ImageConfig.for_encoder(self.hparams.encoder)
        transform, geometric = config.transform(), config.geometric()
        pil = [load_image(x) if isinstance(x, (str, Path)) else x.convert("RGB") for x in images]
        batch = {"images": torch.stack([transform(p) for p in pil]).to(self.device)}
        results = self.generate(batch, beam_size)
        for r, p in zip(results, pil):
            r["image"] = np.asarray(geometric(p))
        return results

    # ---- training and evaluation ---------------------------------------------------------------------
    def training_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self(batch)
        losses = self.losses(batch, out)
        B = batch["ids"].shape[0]
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=B)
        if "log_p_s" in out:
            self.log("train/baseline", self.baseline, batch_size=B)
        return losses["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val = {"hyps": [], "refs": [], "in_box": [], "figures": []}

    def validation_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def test_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    def _eval_step(self, batch: Dict[str, Tensor], batch_idx: int, split: str) -> None:
        if not batch:
            return
        B = batch["ids"].shape[0]
        out = self(batch)
        losses = self.losses(batch, out)
        self.log(f"{split}/loss", losses["nll"], prog_bar=True, sync_dist=True, batch_size=B)
        results = self.generate(batch)
        self._val["hyps"].extend(r["caption"] for r in results)
        self._val["refs"].extend(batch["references"])
        if "boxes" in batch and self.hparams.attention != "none":
            self._val["in_box"].extend(self._attention_in_box(batch, results))
        if split == "val" and batch_idx == 0 and self.hparams.log_images > 0 and not self.trainer.sanity_checking:
            self._val["figures"] = [(int(i), r) for i, r in zip(batch["index"][: self.hparams.log_images], results)]

    def _attention_in_box(self, batch: Dict[str, Tensor], results: List[Dict[str, Any]]) -> List[bool]:
        """For each colour/shape word generated: is the attention argmax (the centre of the grid cell)
        inside the box of the object the word names? Words are tied to objects by the datamodule's
        ``word_objects`` (phrase k = object k in reading order)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        word_objects = getattr(datamodule, "word_objects", None)
        if word_objects is None:
            return []
        size = float((self.hparams.image_config or {}).get("size", 0) or 0)
        hits = []
        for b, r in enumerate(results):
            if r["attention"] is None or not r["words"]:
                continue
            h, w = grid_shape(r["attention"].shape[-1])
            n_boxes = int(batch["box_mask"][b].sum())
            for t, obj in enumerate(word_objects(r["words"])):
                if obj < 0:
                    continue
                if obj >= n_boxes:
                    hits.append(False)  # names an object that is not there
                    continue
                loc = int(r["attention"][t].argmax())
                y, x = (loc // w + 0.5) * size / h, (loc % w + 0.5) * size / w
                x0, y0, x1, y1 = batch["boxes"][b, obj].tolist()
                hits.append(x0 <= x <= x1 and y0 <= y <= y1)
        return hits

    def _gather(self, values: List) -> List:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            gathered: List[List] = [None] * torch.distributed.get_world_size()  # type: ignore[list-item]
            torch.distributed.all_gather_object(gathered, values)
            return [v for part in gathered for v in part]
        return values

    def _eval_epoch_end(self, split: str) -> Dict[str, float]:
        hyps, refs = self._gather(self._val.get("hyps", [])), self._gather(self._val.get("refs", []))
        if not hyps:
            return {}
        scores = caption_metrics(hyps, refs)
        scores["exact"] = float(np.mean([normalize_caption(h) in {normalize_caption(r) for r in rs} for h, rs in zip(hyps, refs)]))
        in_box = self._gather(self._val.get("in_box", []))
        if in_box:
            scores["attn_in_box"] = float(np.mean(in_box))
        for name, value in scores.items():
            self.log(f"{split}/{name}", value, prog_bar=name in ("bleu4", "cider", "exact"), rank_zero_only=True)
        return scores

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        scores = self._eval_epoch_end("val")
        if self._val.get("figures") and self.trainer.is_global_zero:
            self._log_figures(self._val["figures"])
        if scores:
            self.print(f"step {self.global_step}: " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()))

    def on_test_epoch_end(self) -> None:
        scores = self._eval_epoch_end("test")
        if scores:
            self.print("test: " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()))

    def _log_figures(self, figures: List[Tuple[int, Dict[str, Any]]]) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        loggers = [lg for lg in self.trainer.loggers if hasattr(lg, "log_image")]
        if not loggers or not hasattr(datamodule, "preview"):
            return
        pictures, captions = [], []
        for index, result in figures:
            try:
                image = datamodule.preview("val", index)
            except Exception as err:  # a picture must never stop training
                warnings.warn(f"no attention figure for validation image {index}: {err}")
                continue
            pictures.append(attention_figure_array(image, result["words"], result["attention"]))
            captions.append(result["caption"])
        for logger in loggers:
            try:
                logger.log_image(key="val/attention", images=pictures, caption=captions, step=self.global_step)
            except Exception as err:
                warnings.warn(f"could not log attention figures to {type(logger).__name__}: {err}")

    # ---- optimisation ------------------------------------------------------------------------------
    def param_groups(self) -> List[Dict[str, Any]]:
        """The shared AdamW groups (:class:`TaskModule`), plus the trainable encoder at ``encoder_lr``."""
        hp = self.hparams
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in encoder_ids]
        groups = decay_groups(rest, hp.weight_decay)
        encoder_params = [p for p in self.encoder.parameters() if p.requires_grad]
        if encoder_params:
            groups.append({"params": encoder_params, "weight_decay": hp.weight_decay, "lr": hp.encoder_lr})
        return groups


# ---- the paper's figure ---------------------------------------------------------------------------------
def attention_figure(image: np.ndarray, words: Sequence[str], attention: Optional[Tensor], path: Optional[str | Path] = None, columns: int = 5):
    """The image, then one panel per generated word with the image lit where the model looked (the
    attention map upsampled to the image, bright = high weight) and the most attended cell outlined
    (Xu et al. 2015, figures 2-3). ``attention`` ``(n_words, L)`` over a square grid; ``None`` (Show and
    Tell) draws the image with its caption only. Returns the matplotlib figure (saved as PNG at
    ``path`` when given)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    image = np.asarray(image)
    H, W = image.shape[:2]
    panels = 1 + (len(words) if attention is not None else 0)
    cols = min(columns, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(image)
    axes[0, 0].set_title(" ".join(words) if attention is None else "input", fontsize=9, wrap=True)
    if attention is not None:
        attention = np.asarray(attention, dtype=np.float32)
        h, w = grid_shape(attention.shape[-1])
        for t, word in enumerate(words):
            ax = axes.flat[t + 1]
            grid = attention[t].reshape(h, w)
            up = np.asarray(Image.fromarray(grid / max(grid.max(), 1e-8)).resize((W, H), Image.BILINEAR))
            lit = (image.astype(np.float32) * (0.2 + 0.8 * up[..., None])).clip(0, 255).astype(np.uint8)
            ax.imshow(lit)
            r, c = divmod(int(grid.argmax()), w)
            ax.add_patch(Rectangle((c * W / w, r * H / h), W / w, H / h, fill=False, edgecolor="red", linewidth=1.2))
            ax.set_title(word, fontsize=10)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def attention_figure_array(image: np.ndarray, words: Sequence[str], attention: Optional[Tensor]) -> np.ndarray:
    """:func:`attention_figure` as an ``(H, W, 3)`` uint8 array (for loggers)."""
    from zoo.viz import figure_array

    return figure_array(attention_figure(image, words, attention))


# ---- `zoo caption` ------------------------------------------------------------------------------------
def caption_command(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zoo caption",
        description="Caption images with a trained ImageCaptioner and save the attention figure of each (PNG).",
    )
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--ckpt", required=True, help="a Lightning checkpoint written by `zoo fit`")
    parser.add_argument("--beam", type=int, default=None, help="beam size (1 = greedy; default: the model's)")
    parser.add_argument("--out", default="captions", help="folder for the figures (default: ./captions)")
    parser.add_argument("--no-figure", action="store_true", help="print the captions only")
    args = parser.parse_args(argv)
    from datamodules.coco_captions import CorruptImageError
    from zoo.tasks.base import load_task

    try:
        model = load_task(args.ckpt, ImageCaptioner)
    except (FileNotFoundError, ValueError, KeyError) as e:
        parser.exit(2, f"zoo caption: error: {e}\n")
    status = 0
    for path in args.images:
        try:
            result = model.caption_images([path], args.beam)[0]
        except (FileNotFoundError, CorruptImageError) as e:
            print(f"zoo caption: error: {e}", flush=True)
            status = 1
            continue
        line = f"{path}\t{result['caption']}"
        if not args.no_figure:
            import matplotlib.pyplot as plt

            figure = Path(args.out) / f"{Path(path).stem}_attention.png"
            plt.close(attention_figure(result["image"], result["words"], result["attention"], figure))
            line += f"\t{figure}"
        print(line, flush=True)
    return status
