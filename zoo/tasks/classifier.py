"""`SequenceClassifier`: many-to-one — read a whole sequence, emit one label.

    e_t = E[w_t]                                   (learned embedding, no pretraining)
    h_1..h_T = Recurrent(e_1..e_T)                 (any cell family, deep, bi-directional)
    s = pool(h_1..h_T)                             last | mean | max | attention
    p(y | w) = softmax(W s + b)

Pooling over the real steps only (``lengths``), so padding never changes a prediction:

- ``last``: the final state of each direction of the top layer — the forward direction's state after
  the last real token, the backward direction's after reading back to the first token.
- ``mean``: the average of the top layer's outputs over the real steps.
- ``max``: the element-wise maximum over the real steps (padded steps set to -inf first).
- ``attention``: additive self-attention, ``a_t = softmax_t(v^T tanh(W h_t))`` over the real steps,
  ``s = sum_t a_t h_t``.
- several joined by ``+`` (e.g. ``last+max+mean``, ULMFiT's "concat pooling"): their concatenation.

The tokenizer travels with the model: ``tokenizer_json`` (the Hugging Face tokenizer as a JSON string),
``label_names`` and the datamodule's ``max_tokens`` and ``truncation`` (as ``text_max_tokens`` and
``text_truncation``: Lightning refuses to log a module and a datamodule hyperparameter of the same name
with different values) are hyperparameters, filled in from the datamodule at ``setup`` when not given,
so a checkpoint classifies raw strings by itself (:meth:`predict`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from datamodules.loaders import pad_collate
from datamodules.tokenizers import UNK_ID, encode_texts, encode_truncated, load_tokenizer, truncate
from zoo.errors import InputError
from zoo.graphs import Graph, batch_axes
from zoo.metrics import score_classifier
from zoo.recurrent import Recurrent
from zoo.sequences import State, evaluating, lengths_to_mask, top_state
from zoo.streaming import Stream, as_ids, check_streamable
from zoo.tasks.base import Optimiser, TaskModule
from zoo.tasks.data import ClassificationData

POOLS = ("last", "mean", "max", "attention")


class AttentionPool(nn.Module):
    """Additive self-attention pooling: ``a = softmax(v^T tanh(W h))`` over the real steps."""

    def __init__(self, size: int, attention_size: Optional[int] = None) -> None:
        super().__init__()
        self.proj = nn.Linear(size, attention_size or size)
        self.score = nn.Linear(attention_size or size, 1, bias=False)

    def forward(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bt,btd->bd", weights, h), weights


class SequenceClassifier(TaskModule):
    data_hparams = {
        "tokenizer_json": "tokenizer_json",
        "label_names": "label_names",
        "text_max_tokens": "max_tokens",
        "text_truncation": "truncation",
    }
    required_data = ("tokenizer_json", "label_names")
    must_match = ("tokenizer_json", "label_names")
    exported_settings = ("label_names",)
    optimiser = Optimiser(lr=2e-3, weight_decay=0.01, warmup_steps=100, min_lr_ratio=0.05, grad_clip=1.0)
    scorer = "score_imdb"

    def __init__(
        self,
        tokenizer_json: Optional[str] = None,
        label_names: Optional[List[str]] = None,
        text_max_tokens: Optional[int] = None,
        text_truncation: Optional[str] = None,
        cell: str = "gru",
        embedding_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        pool: str = "max",
        dropout: float = 0.3,
        embedding_dropout: float = 0.2,
        label_smoothing: float = 0.0,
        backend: str = "native",
        **optimiser: Any,
    ) -> None:
        """
        Args:
            tokenizer_json: the Hugging Face tokenizer as a JSON string; ``None`` = the datamodule's
                (``tokenizer_json``) at setup. Sets the vocabulary size.
            label_names: class names; ``None`` = the datamodule's (``label_names``) at setup.
            text_max_tokens, text_truncation: how :meth:`predict` cuts long texts (as in training);
                ``None`` = the datamodule's ``max_tokens`` and ``truncation`` at setup.
            cell: ``rnn`` | ``gru`` | ``lstm``; ``num_layers`` deep, ``bidirectional`` or not.
            embedding_dim, hidden_size: widths of the embedding and of each recurrent direction.
            pool: ``last`` | ``mean`` | ``max`` | ``attention``, or several joined by ``+`` (concatenated;
                see the module docstring).
            dropout: between recurrent layers and before the output layer.
            embedding_dropout: dropout on the embedded tokens.
            **optimiser: the shared optimiser arguments ``lr``, ``weight_decay``, ``warmup_steps``,
                ``min_lr_ratio``, ``grad_clip`` (:class:`~zoo.tasks.base.Optimiser`); this task's defaults: ``optimiser``.
            label_smoothing: for the cross-entropy loss.
            backend: ``native`` (torch's fused RNNs) or ``cells`` (ours, every gate inspectable).
        """
        super().__init__(**optimiser)
        if not pool or any(p not in POOLS for p in pool.split("+")):
            raise ValueError(f"unknown pool {pool!r}: expected one of {POOLS}, or several joined by '+'")
        self.save_hyperparameters()
        self._tokenizer = None
        self.build_if_ready()

    # ---- construction ----------------------------------------------------------------------------
    def build(self) -> None:
        hp = self.hparams
        vocab_size = self.tokenizer.get_vocab_size()
        num_classes = len(hp.label_names)
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got label_names={hp.label_names}")
        self.embed = nn.Embedding(vocab_size, hp.embedding_dim, padding_idx=0)
        self.embed_drop = nn.Dropout(hp.embedding_dropout)
        self.rnn = Recurrent(
            hp.embedding_dim,
            hp.hidden_size,
            hp.cell,
            hp.num_layers,
            bidirectional=hp.bidirectional,
            dropout=hp.dropout,
            backend=hp.backend,
        )
        size = self.rnn.output_size
        pools = hp.pool.split("+")
        self.attention = AttentionPool(size) if "attention" in pools else None
        self.drop = nn.Dropout(hp.dropout)
        self.head = nn.Linear(size * len(pools), num_classes)
        metrics = lambda: nn.ModuleDict(
            {  # noqa: E731
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes, average="macro"),
            }
        )
        self.metrics = nn.ModuleDict({"val": metrics(), "test": metrics()})

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            if self.hparams.tokenizer_json is None:
                raise RuntimeError("this SequenceClassifier has no tokenizer yet (it is set at setup from the datamodule)")
            self._tokenizer = load_tokenizer(self.hparams.tokenizer_json)
        return self._tokenizer

    @property
    def label_names(self) -> List[str]:
        return list(self.hparams.label_names)

    # ---- the model -------------------------------------------------------------------------------
    def forward(self, ids: Tensor, lengths: Optional[Tensor] = None, return_attention: bool = False):
        """``ids`` ``(batch, time)``, ``lengths`` ``(batch,)`` → logits ``(batch, classes)`` (and the
        attention weights ``(batch, time)`` when asked for; ``None`` unless the pool includes ``attention``)."""
        if lengths is None:
            lengths = torch.full((ids.shape[0],), ids.shape[1], dtype=torch.long, device=ids.device)
        out = self.rnn(self.embed_drop(self.embed(ids)), lengths=lengths)
        pooled, weights = self.pool(out, lengths)
        logits = self.head(self.drop(pooled))
        return (logits, weights) if return_attention else logits

    def pool(self, out, lengths: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """The summary vector ``(batch, pools * D * H)`` and the attention weights (or ``None``)."""
        h = out.output  # (B, T, D*H), zeros at padded steps
        mask = lengths_to_mask(lengths.to(h.device), h.shape[1])
        parts, weights = [], None
        for pool in self.hparams.pool.split("+"):
            if pool == "last":  # final state of each direction of the top layer
                parts.append(top_state(out.state, self.rnn.num_directions))
            elif pool == "mean":
                parts.append(h.sum(1) / lengths.to(h.device, h.dtype)[:, None])
            elif pool == "max":
                parts.append(h.masked_fill(~mask[..., None], float("-inf")).amax(1))
            else:
                summary, weights = self.attention(h, mask)
                parts.append(summary)
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0], weights

    # ---- training --------------------------------------------------------------------------------
    def _step(self, batch: Dict[str, Tensor], split: str) -> Tensor:
        logits = self(batch["ids"], batch["lengths"])
        size = batch["labels"].shape[0]
        loss = self.global_mean(F.cross_entropy(logits, batch["labels"], label_smoothing=self.hparams.label_smoothing), size)
        if split == "train":
            self.log("train/loss", loss, prog_bar=True, batch_size=size)
            self.log("train/acc", (logits.argmax(-1) == batch["labels"]).float().mean(), batch_size=size)
        else:
            self.log(f"{split}/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
            for name, metric in self.metrics[split].items():
                metric.update(logits, batch["labels"])
                self.log(f"{split}/{name}", metric, prog_bar=name == "acc")
        return loss

    def training_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int = 0) -> List[Dict[str, Any]]:
        """Per example: ``label``, ``probs`` and, where the batch has them, ``index``, ``source`` and ``text``."""
        probs = torch.softmax(self(batch["ids"], batch["lengths"]).float(), -1)
        results = self._describe(probs)
        for key in ("index", "source", "text"):
            if key in batch:
                for result, value in zip(results, batch[key]):
                    result[key] = value.item() if isinstance(value, Tensor) else value
        return results

    # ---- inference on raw text -------------------------------------------------------------------
    def _describe(self, probs: Tensor) -> List[Dict[str, Any]]:
        names = self.label_names
        return [{"label": names[int(p.argmax())], "probs": {n: float(v) for n, v in zip(names, p.tolist())}} for p in probs.cpu()]

    def tokenize(self, texts: Sequence[str]) -> List[Tensor]:
        """Token ids as the model saw them in training: tokenized, then cut to ``text_max_tokens`` by the
        ``text_truncation`` policy. A text with no tokens (empty, or only markup) becomes ``[<unk>]``."""
        hp = self.hparams  # a long text is cut before it is tokenized whole (memory bounded by what the model reads)
        cut = encode_truncated(self.tokenizer, list(texts), hp.text_max_tokens, hp.text_truncation or "head_tail")
        return [self._cut(x or [UNK_ID]) for x in cut]

    def _cut(self, ids: Sequence[int]) -> Tensor:
        """``ids`` cut to ``text_max_tokens`` by the ``text_truncation`` policy, as in training."""
        hp = self.hparams
        return truncate(torch.tensor(list(ids), dtype=torch.long), hp.text_max_tokens, hp.text_truncation or "head_tail")

    def probabilities(self, encoded: Sequence[Tensor], batch_size: int = 64) -> Tensor:
        """``p(y | w)`` ``(len(encoded), classes)`` of token id sequences, ``batch_size`` padded sequences
        per forward pass (padding never changes a prediction: see the module docstring)."""
        self.check_built()
        parts = []
        with evaluating(self):
            for start in range(0, len(encoded), batch_size):
                batch = pad_collate([{"ids": x} for x in encoded[start : start + batch_size]])
                parts.append(torch.softmax(self(batch["ids"].to(self.device), batch["lengths"].to(self.device)).float(), -1))
        return torch.cat(parts) if parts else torch.zeros(0, len(self.label_names))

    def predict(self, texts: str | Sequence[str], batch_size: int = 64) -> List[Dict[str, Any]]:
        """Classify raw strings: ``[{"text", "label", "probs": {name: probability}}]``, one per text."""
        self.check_built()
        texts = [texts] if isinstance(texts, str) else list(texts)
        results = self._describe(self.probabilities(self.tokenize(texts), batch_size))
        return [{"text": text, **result} for text, result in zip(texts, results)]

    def token_effects(self, text: str) -> Dict[str, Any]:
        """Leave-one-token-out: how much each of the model's tokens ``w_t`` of ``text`` (after truncation)
        moves the probability of the predicted label ``y* = argmax_y p(y | w)``::

            effect_t = p(y* | w) - p(y* | w without w_t)

        > 0: the token pushed towards ``y*``; < 0: away from it. The full text and its ``T`` deletions go
        through one batched forward pass. Deleting the only token leaves the empty text, which the model
        reads as ``[<unk>]`` (as :meth:`tokenize` does). Returns ``{"text", "tokens", "effects", "label",
        "prob", "text_tokens"}``: the token strings as the model reads them (normalized; a word outside the vocabulary
        is ``<unk>``), one effect per token, ``y*``, ``p(y* | w)`` and the text's number of tokens
        before truncation. A text with no
        tokens (empty, or only markup) is refused (``ValueError``): there is nothing to delete."""
        self.check_built()
        ids = encode_texts(self.tokenizer, [text])[0]
        if not ids:
            raise InputError(f"text {text[:40]!r} has no tokens (empty, or only markup): nothing to explain")
        text_tokens, ids = len(ids), self._cut(ids)
        deletions = [torch.cat([ids[:t], ids[t + 1 :]]) for t in range(len(ids))]
        deletions = [x if len(x) else torch.tensor([UNK_ID]) for x in deletions]
        probs = self.probabilities([ids, *deletions], batch_size=len(ids) + 1)
        label = int(probs[0].argmax())
        return {
            "text": text,
            "tokens": [self.tokenizer.id_to_token(int(i)) for i in ids],
            "effects": (probs[0, label] - probs[1:, label]).tolist(),
            "label": self.label_names[label],
            "prob": float(probs[0, label]),
            "text_tokens": text_tokens,
        }

    def score(self, data: Any, limit: Optional[int] = None) -> Dict[str, float]:
        """Accuracy and macro F1 of :meth:`predict` (what ``zoo classify`` does) on the raw test texts of
        any classification datamodule (:class:`~zoo.tasks.data.ClassificationData`: IMDB, AG News, ...);
        ``limit``: the first ``limit`` texts of each label. ``test_acc``, ``test_macro_f1``, ``examples``."""
        if not isinstance(data, ClassificationData):
            raise InputError(
                f"a SequenceClassifier is scored on a classification datamodule (test_examples, label_names); "
                f"{type(data).__name__} is none"
            )
        return score_classifier(self, *data.test_examples(limit))

    def stream(self) -> LabelStream:
        """A running label over a token stream (:class:`LabelStream`): ``stream.step(id)``
        -> the class probabilities of the tokens so far. Unidirectional models only (a bidirectional
        one is refused with the reason)."""
        self.check_built()
        return LabelStream(self)

    # ---- export (zoo.export) ------------------------------------------------------------------------
    def export_graphs(self, batch: int = 2, length: int = 5) -> List[Graph]:
        """``classifier``: ``ids (B, T), lengths (B,) -> probs (B, C)``."""
        gen = torch.Generator().manual_seed(0)
        inputs = {
            "ids": torch.randint(4, self.tokenizer.get_vocab_size(), (batch, length), generator=gen),
            "lengths": torch.arange(length, length - batch, -1).clamp(min=1),
        }
        return [Graph("classifier", ClassifierForward(self), inputs, ["probs"], batch_axes(inputs, {}, {"ids": (1, "time")}))]


class ClassifierForward(nn.Module):
    """The classifier as a graph: class probabilities of padded token ids and their lengths."""

    def __init__(self, model: SequenceClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return torch.softmax(self.model(ids, lengths).float(), -1)


class LabelStream(Stream):
    """A running label over a token stream (``model``: a unidirectional ``SequenceClassifier``)."""

    def __init__(self, model: nn.Module) -> None:
        check_streamable(model.rnn, "classifier")
        super().__init__(model, model.rnn)
        self.pools: List[str] = model.hparams.pool.split("+")
        self.total = self.maximum = None  # mean's running sum, max's running maximum
        self.score_max = self.weighted = self.normaliser = None  # attention's online softmax

    def reset(self, state: Optional[State] = None) -> None:
        super().reset(state)
        self.total = self.maximum = self.score_max = self.weighted = self.normaliser = None

    def _attend(self, h: Tensor) -> Tensor:
        """Online softmax: with m = max_t e_t, the prefix's ``sum_t exp(e_t - m) h_t / sum_t exp(e_t - m)``."""
        pool = self.model.attention
        e = pool.score(torch.tanh(pool.proj(h)))  # (B, 1)
        if self.score_max is None:
            self.score_max, self.weighted, self.normaliser = e, h, torch.ones_like(e)
        else:
            m = torch.maximum(self.score_max, e)
            old, new = torch.exp(self.score_max - m), torch.exp(e - m)
            self.weighted = self.weighted * old + h * new
            self.normaliser = self.normaliser * old + new
            self.score_max = m
        return self.weighted / self.normaliser

    @torch.no_grad()
    def step(self, tokens: int | Sequence[int] | Tensor) -> Tensor:
        """One token id per row ``(batch,)`` -> class probabilities ``(batch, classes)`` of each prefix."""
        model = self.model
        h = self.advance(model.embed(as_ids(tokens, model.head.weight.device)))
        self.total = h if self.total is None else self.total + h
        self.maximum = h if self.maximum is None else torch.maximum(self.maximum, h)
        parts = []
        for pool in self.pools:
            if pool == "last":  # unidirectional: the top layer's state is its output
                parts.append(h)
            elif pool == "mean":
                parts.append(self.total / self.steps)
            elif pool == "max":
                parts.append(self.maximum)
            else:
                parts.append(self._attend(h))
        return torch.softmax(model.head(torch.cat(parts, -1)).float(), -1)

    def read(self, text: str) -> Tensor:
        """Tokenize a chunk of text (no truncation: a stream has no end to cut at) and step through its
        tokens: ``(tokens, classes)``, the probabilities after each (batch 1)."""
        ids = self.model.tokenizer.encode(text).ids
        if not ids:
            raise InputError(f"no tokens in {text[:40]!r}")
        return torch.cat([self.step(i) for i in ids])
