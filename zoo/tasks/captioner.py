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
weights of every generated word, drawn over the image by :func:`zoo.viz.attention_figure` — the
paper's figure — by ``zoo caption NAME_OR_FOLDER image.jpg`` and, during validation, logged to W&B.
A measure only the data can make (ShapesCaptions: is a word's attention inside the box of the
object it names?) comes from the datamodule (:meth:`~zoo.tasks.base.TaskModule.data_measures`).

With a frozen encoder (``trainable: false``) the datamodule's images are replaced by encoder features
computed once and cached on disk (see ``datamodules/captions.py``): later epochs and runs never
run the CNN.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID, decode_words, load_tokenizer
from zoo.attention import Attention, attention_entropy, doubly_stochastic_penalty, hard_attention, reinforce_loss
from zoo.decoding import Decoded, beam_search, greedy_decode
from zoo.encoders import grid_adapter
from zoo.families import cell_class
from zoo.graphs import Graph, batch_axes, next_names, state_args, state_outs
from zoo.metrics import caption_metrics, gather_lists, normalize_caption
from zoo.recurrent import Recurrent
from zoo.sequences import evaluating
from zoo.tasks.base import Optimiser
from zoo.tasks.image import Figure, ImageTask

ATTENTION_KINDS = ("none", "soft", "hard")
DECODERS = ("sat", "luong")


def _max_len(datamodule: Any) -> Optional[int]:
    longest = getattr(datamodule, "max_caption_len", None)
    return None if longest is None else int(longest) + 1  # + <eos>


class ImageCaptioner(ImageTask):
    data_hparams = {"tokenizer_json": "tokenizer_json", "image_config": "image_config", "max_len": _max_len}
    required_data = ("tokenizer_json",)
    must_match = ("tokenizer_json",)
    exported_settings = ("max_len",)
    optimiser = Optimiser(lr=4e-4, weight_decay=0.0, warmup_steps=100, min_lr_ratio=0.1, grad_clip=5.0)
    sizes = {**ImageTask.sizes, "attention_dim": "width", "feature_dim": "width", "feature_layers": "layers"}
    scorer = "score_shapes_captions"

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
        encoder_lr: float = 1e-4,
        beam_size: int = 3,
        length_penalty: float = 0.0,
        max_len: Optional[int] = None,
        cache_features: bool = True,
        log_images: int = 4,
        **optimiser: Any,
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
            encoder_lr: the learning rate of a trainable encoder.
            **optimiser: the shared optimiser arguments ``lr``, ``weight_decay``, ``warmup_steps``,
                ``min_lr_ratio``, ``grad_clip`` (:class:`~zoo.tasks.base.Optimiser`); this task's defaults: ``optimiser``.
            beam_size, length_penalty: decoding at validation/test/inference (1 = greedy); GNMT alpha.
            max_len: longest caption generated (default: the datamodule's max_caption_len + 1).
            cache_features: with a frozen encoder, ask the datamodule to cache encoder features.
            log_images: attention figures logged per validation (0 = none).
        """
        super().__init__(**optimiser)
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        cell_class(cell)  # validates the name
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        self.save_hyperparameters()
        self.init_encoder()
        self.norm, self.project, self.memory_size = grid_adapter(
            self.encoder.out_channels, feature_dim, feature_layers, coordinates
        )
        self.register_buffer("baseline", torch.zeros(()), persistent=True)  # hard attention's moving average
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool), persistent=True)
        self.tokenizer = None
        self._val: Dict[str, Any] = {}
        self.build_if_ready()

    # ---- building ----------------------------------------------------------------------------------
    def build(self) -> None:
        hp = self.hparams
        self.tokenizer = load_tokenizer(hp.tokenizer_json)
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

    # ---- the model ---------------------------------------------------------------------------------
    def memory(self, batch: Dict[str, Tensor]) -> Tensor:
        """The (adapted) feature grid ``(B, L, M)`` from ``images`` or cached ``features``."""
        return self.adapted_grid(batch)

    def initial_state(self, memory: Tensor):
        H = self.hparams.hidden_size
        pooled = memory.mean(1)
        init = self.init_state(pooled)
        if self.hparams.attention != "none":
            init = torch.tanh(init)
        if self.hparams.cell == "lstm":
            return init[:, :H], init[:, H:]
        return init

    def attend_step(
        self, words: Tensor, state, memory: Tensor, keys: Tensor, mode: str = "soft", use_soft: Optional[Tensor] = None
    ):
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
        nll_tokens = F.cross_entropy(
            out["logits"].flatten(0, 1).float(), targets.flatten(), reduction="none", ignore_index=PAD_ID
        ).view_as(targets)
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
                init = (
                    (state[0].unsqueeze(0).contiguous(), state[1].unsqueeze(0).contiguous())
                    if lstm
                    else state.unsqueeze(0).contiguous()
                )
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
        return beam_search(
            step, state, B, BOS_ID, EOS_ID, max_len, beam_size=K, alpha=hp.length_penalty, pad_id=PAD_ID, device=memory.device
        )

    def caption_batch(
        self, batch: Dict[str, Tensor], beam_size: Optional[int] = None, max_len: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Caption a batch (``images`` or ``features``): per image ``{"words", "caption", "attention"
        (n_words, L) or None, "score"}`` — the attention row of each word, ``<eos>`` left out."""
        with evaluating(self):
            decoded = self._decode_memory(self.memory(batch), beam_size, max_len)
        results = []
        for b in range(decoded.tokens.shape[0]):
            words = decode_words(self.tokenizer, decoded.tokens[b].tolist())
            attention = decoded.extras["attention"][b, : len(words)].float().cpu() if "attention" in decoded.extras else None
            results.append(
                {"caption": " ".join(words), "words": words, "score": float(decoded.scores[b]), "attention": attention}
            )
        return results

    def predict(self, images: Any, beam_size: Optional[int] = None, batch_size: int = 16) -> List[Dict[str, Any]]:
        """Caption images (paths, PIL images or uint8 ``(H, W, 3)`` arrays) with the preprocessing of
        training: ``[{"image" (the path, or the position), "caption", "words", "score", "attention"}]``."""
        self.check_built()
        images = self.image_list(images)
        results: List[Dict[str, Any]] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            for offset, (image, result) in enumerate(
                zip(chunk, self.caption_batch({"images": self.image_batch(chunk)}, beam_size))
            ):
                results.append({"image": self.image_name(image, start + offset), **result})
        return results

    def predict_step(self, batch: Dict[str, Any], batch_idx: int = 0) -> List[Dict[str, Any]]:
        """The dicts of :meth:`predict` for a batch of the datamodule (``image``: its path or id
        where the batch has one, else its index)."""
        names = batch.get("image", batch.get("index"))
        results = self.caption_batch(batch)
        return [{"image": name.item() if isinstance(name, Tensor) else name, **r} for name, r in zip(names, results)]

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

    def start_eval(self) -> None:
        self._val = {"hyps": [], "refs": [], "measures": {}}

    def eval_step(self, batch: Dict[str, Tensor], batch_idx: int, split: str) -> None:
        if not batch:
            return
        B = batch["ids"].shape[0]
        out = self(batch)
        losses = self.losses(batch, out)
        self.log(f"{split}/loss", losses["nll"], prog_bar=True, sync_dist=True, batch_size=B)
        results = self.caption_batch(batch)
        self._val["hyps"].extend(r["caption"] for r in results)
        self._val["refs"].extend(batch["references"])
        for name, values in self.data_measures(batch, results).items():
            self._val["measures"].setdefault(name, []).extend(values)
        n = self.figures_due(split, batch_idx)
        if n:
            self.figures = [
                Figure(int(i), r["words"], r["attention"], r["caption"]) for i, r in zip(batch["index"][:n], results[:n])
            ]

    def epoch_scores(self, split: str) -> Dict[str, float]:
        hyps, refs = gather_lists(self._val.get("hyps", [])), gather_lists(self._val.get("refs", []))
        if not hyps:
            return {}
        scores = caption_metrics(hyps, refs)
        scores["exact"] = float(
            np.mean([normalize_caption(h) in {normalize_caption(r) for r in rs} for h, rs in zip(hyps, refs)])
        )
        for name, values in sorted(self._val.get("measures", {}).items()):
            values = gather_lists(values)
            if values:
                scores[name] = float(np.mean(values))
        for name, value in scores.items():
            self.log(f"{split}/{name}", value, prog_bar=name in ("bleu4", "cider", "exact"), rank_zero_only=True)
        return scores

    # ---- export (zoo.export) ------------------------------------------------------------------------
    def export_graphs(self, batch: int = 2, length: int = 5) -> List[Graph]:
        """``encoder``: ``images (B, 3, H, W) -> memory [, keys], h [, c]``; ``decoder_step``: ``tokens
        (B,), memory [, keys], h [, c] -> log_probs (B, V), h_next [, c_next] [, attention]``."""
        gen = torch.Generator().manual_seed(0)
        size = self.image_config().size  # normalised images, as the datamodule's transform gives them
        images = {"images": torch.rand(batch, 3, size, size, generator=gen)}
        with torch.no_grad():
            encoded = CaptionerEncoder(self)(**images)
        attends = self.hparams.attention != "none"
        states = ["h", "c"] if self.hparams.cell == "lstm" else ["h"]
        enc_names = ["memory"] + (["keys"] if attends else []) + states
        step = {"tokens": torch.randint(4, self.vocab_size, (batch,), generator=gen), **dict(zip(enc_names, encoded))}
        outs = ["log_probs", *next_names(states)] + (["attention"] if attends else [])
        return [
            Graph("encoder", CaptionerEncoder(self), images, enc_names, batch_axes(images, {})),
            Graph("decoder_step", CaptionerStep(self), step, outs, batch_axes(step, {})),
        ]


class CaptionerEncoder(nn.Module):
    """The image as a graph: its adapted grid (attention keys) and the decoder's first state."""

    def __init__(self, model: ImageCaptioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor):
        memory = self.model.memory({"images": images})
        keys = () if self.model.hparams.attention == "none" else (self.model.attend.project(memory),)
        return (memory, *keys, *state_outs(self.model.initial_state(memory)))


class CaptionerStep(nn.Module):
    """One step of :meth:`ImageCaptioner._decode_memory`'s search (soft attention, or hard attention's
    argmax as at inference), without its bans (``<pad>``, ``<bos>``, ``<unk>``): a caller's choice."""

    def __init__(self, model: ImageCaptioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, memory: Tensor, h: Tensor, keys: Optional[Tensor] = None, c: Optional[Tensor] = None):
        model, state = self.model, state_args(h, c)
        words = model.embed(tokens)
        if keys is None:  # attention "none": the Recurrent, state (B, H) as the search keeps it
            out = model.rnn(words[:, None], state=tuple(s[None] for s in state) if c is not None else state[None])
            new = tuple(s[0] for s in out.state) if c is not None else out.state[0]
            logits, extra = model.out(out.output[:, 0]), ()
        else:
            mode = "soft" if model.hparams.attention == "soft" else "argmax"
            logits, new, alpha, _ = model.attend_step(words, state, memory, keys, mode)
            extra = (alpha,)
        return (torch.log_softmax(logits.float(), -1), *state_outs(new), *extra)
