"""`VisualQuestionAnswerer`: many-to-one with an image — a question and an image in, one answer out.

The question is read by a recurrent network (any cell of :class:`~zoo.recurrent.Recurrent`, packed
lengths); the image by a timm encoder as a grid ``v_1..v_L`` of ``d``-dimensional locations (each
location's features, with its (x, y), through a learned projection, :func:`zoo.encoders.grid_adapter`,
and its (x, y) kept as its last two numbers: a hop's context then says *where* it looked, which the
next hop needs to ask for "the shape left of the red circle").
Stacked attention (Yang et al. 2016, SAN, eqs. 15-19), hop ``k = 1..K``::

    u^0     = W_q h_T                                      the question vector (top layer's final state)
    h_A,i   = tanh(W_I v_i + W_Q u^{k-1} + b_A)            additive attention (zoo.attention)
    p^k     = softmax_i(w_P^T h_A,i)                       where hop k looks
    v~^k    = sum_i p^k_i v_i
    u^k     = v~^k + u^{k-1}                               the query, refined by what it found
    p(a)    = softmax(MLP(u^K))                            over the answer vocabulary

With ``relative``, hops k >= 2 also score each location by where it lies from the place the hop
before looked (a relation, "left of the red circle", is a direction from an object, not a place)::

    c^{k-1} = sum_i p^{k-1}_i (x_i, y_i)                   where hop k-1 looked
    h_A,i   = tanh(W_I [v_i; (x_i, y_i) - c^{k-1}] + W_Q u^{k-1} + b_A)

With ``attention_supervision`` = lambda > 0 (data that knows where to look: ShapesVQA's boxes), the
hops are also taught where to look: the first hop the object the question names (``R^1``: "the red
circle"), the last hop the object the answer is read from (``R^K``), each as the cells whose centre
lies in its box (:func:`zoo.encoders.cells_in_boxes`). Only where that is one object ("0" or "no" has
none), and only for the question types in ``supervise_types``: SAN counts by how much of its weight
lands on the counted colour, so a count is left unsupervised (taught to look inside the counted
objects' boxes, count accuracy stayed at 0.68-0.73, docs/results.md)::

    loss    = CE(p(a), a*) + lambda (-log sum_{i in R^1} p^1_i  -  log sum_{i in R^K} p^K_i)

With ``shift`` = S > 0, hops k >= 2 also add a score for each place by its offset (in grid cells, up
to S each way) from where the hop before looked, the score of every offset chosen by the query: the
question says "left of", the kernel puts its weight one cell left (the location addressing of Graves
et al. 2014's Neural Turing Machine, here added to the content score)::

    K^k     = W_S u^{k-1}                                  one score per offset (dr, dc) in [-S, S]^2
    e^k_i  += sum_j p^{k-1}_j K^k[clip(r_i - r_j), clip(c_i - c_j)]

Two baselines on the same recipe: ``attention: none`` — ``p(a) = softmax(MLP([mean_i v_i; u^0]))``,
the pooled image beside the question — and ``image: false`` — ``p(a) = softmax(MLP(u^0))``, the
question alone (no encoder is built), which shows how much the answers can be guessed from the words.
The MLP (one hidden ReLU layer) is the same in all three, so the table compares what the model sees.

Accuracy is the VQA accuracy of the argmax (the datamodule's ``answer_scores``: ``min(#humans / 3, 1)``,
plain accuracy with one reference), overall and per question type. Trained with cross-entropy on the
most common human answer. ``predict`` answers raw (image, question) pairs and returns every hop's
attention, drawn by ``zoo answer`` (:func:`zoo.viz.attention_figure`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.tokenizers import PAD_ID, UNK_ID, load_tokenizer
from zoo.attention import Attention, attention_supervision_loss
from zoo.encoders import cells_in_boxes, grid_adapter, grid_coordinates, grid_offsets
from zoo.errors import InputError
from zoo.graphs import Graph, batch_axes
from zoo.metrics import gather_lists
from zoo.recurrent import Recurrent
from zoo.sequences import evaluating, top_state
from zoo.tasks.base import Optimiser
from zoo.tasks.image import Figure, ImageTask

ATTENTION_KINDS = ("stacked", "none")


class VisualQuestionAnswerer(ImageTask):
    data_hparams = {
        "tokenizer_json": "tokenizer_json",
        "answer_names": "answer_names",
        "question_types": "question_types",
        "image_config": "image_config",
        "question_max_tokens": "max_question_len",
    }
    required_data = ("tokenizer_json", "answer_names")
    must_match = ("tokenizer_json", "answer_names")
    exported_settings = ("answer_names", "question_types", "question_max_tokens")
    optimiser = Optimiser(lr=2e-3, weight_decay=0.01, warmup_steps=100, min_lr_ratio=0.05, grad_clip=5.0)
    sizes = {
        **ImageTask.sizes,
        "feature_dim": "width",
        "attention_dim": "width",
        "classifier_hidden": "width",
        "shift": "width",
        "feature_layers": "layers",
        "hops": "layers",
    }
    scorer = "score_shapes_vqa"

    def __init__(
        self,
        tokenizer_json: Optional[str] = None,
        answer_names: Optional[List[str]] = None,
        question_types: Optional[List[str]] = None,
        image_config: Optional[Dict[str, Any]] = None,
        question_max_tokens: Optional[int] = None,
        encoder: str = "zoo_grid_cnn",
        pretrained: bool = False,
        trainable: bool = True,
        weights_path: Optional[str] = None,
        image: bool = True,
        attention: str = "stacked",
        hops: int = 2,
        score: str = "additive",
        relative: bool = False,
        shift: int = 0,
        attention_supervision: float = 0.0,
        supervise_types: Optional[List[str]] = None,
        cell: str = "lstm",
        embedding_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = False,
        feature_dim: int = 256,
        feature_layers: int = 1,
        coordinates: bool = True,
        attention_dim: int = 256,
        classifier_hidden: int = 256,
        dropout: float = 0.1,
        encoder_lr: float = 1e-3,
        log_images: int = 4,
        **optimiser: Any,
    ) -> None:
        """
        Args:
            tokenizer_json, answer_names, question_types, image_config, question_max_tokens: from the
                datamodule at setup (``None``), recorded so a checkpoint answers raw questions by itself.
            encoder, pretrained, trainable, weights_path: the timm backbone (:class:`~zoo.encoders.ImageEncoder`).
            image: ``false`` = the question-only baseline (no encoder).
            attention: ``stacked`` (SAN, ``hops`` hops) | ``none`` (pooled image + question).
            hops: K, the attention layers of SAN (the paper: 2).
            score: each hop's attention score: ``additive`` (SAN's ``w_P^T tanh(W_I v_i + W_Q u)``) or
                ``general`` (Luong et al.'s bilinear ``u^T W v_i``; see :mod:`zoo.attention`).
            relative: hops after the first also score each location by its (x, y) minus where the
                previous hop looked (the values they average stay ``v_i``).
            shift: S, the reach in grid cells of the offset scores of hops after the first (0 = none);
                farther offsets share the outermost score.
            attention_supervision: lambda, the weight of the hops' supervision (0 = none, SAN as published:
                attention learned from the answers alone); needs data with ``target_boxes`` and
                ``named_boxes`` (ShapesVQA).
            supervise_types: the question types whose hops are supervised (``None`` = all).
            cell, embedding_dim, hidden_size, num_layers, bidirectional: the question encoder.
            feature_dim: d, the size of each image location and of the question vector ``u``.
            feature_layers: the projection of each location (see :func:`zoo.encoders.grid_adapter`).
            coordinates: each location's (x, y) in [-1, 1] goes into its projection *and* is kept as the
                last two of its ``d`` numbers, so a hop's context carries where it looked and the next
                hop can ask for a place relative to it ("left of the red circle").
            attention_dim: width of each hop's ``h_A``.
            classifier_hidden: the answer MLP's hidden layer (0 = a linear classifier, as in SAN).
            dropout: on the question vector and in the classifier.
            encoder_lr: the learning rate of a trainable encoder.
            **optimiser: the shared optimiser arguments ``lr``, ``weight_decay``, ``warmup_steps``,
                ``min_lr_ratio``, ``grad_clip`` (:class:`~zoo.tasks.base.Optimiser`); this task's defaults: ``optimiser``.
            log_images: attention figures logged per validation (0 = none).
        """
        super().__init__(**optimiser)
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        if hops < 1:
            raise ValueError(f"hops must be >= 1, got {hops}")
        if shift < 0:
            raise ValueError(f"shift must be >= 0 (grid cells), got {shift}")
        if attention_supervision < 0:
            raise ValueError(f"attention_supervision must be >= 0, got {attention_supervision}")
        if attention_supervision and (attention != "stacked" or not image):
            raise ValueError("attention_supervision needs attention: stacked and image: true (there are no hops to teach)")
        self.save_hyperparameters()
        self.init_encoder(image)
        self.tokenizer = None
        self._eval: Dict[str, Any] = {}
        self._supervised_types: Optional[List[int]] = None  # set by build()
        self.build_if_ready()

    # ---- building ----------------------------------------------------------------------------------
    def build(self) -> None:
        hp = self.hparams
        self.tokenizer = load_tokenizer(hp.tokenizer_json)
        d = hp.feature_dim
        self.embed = nn.Embedding(self.tokenizer.get_vocab_size(), hp.embedding_dim, padding_idx=PAD_ID)
        self.rnn = Recurrent(hp.embedding_dim, hp.hidden_size, hp.cell, num_layers=hp.num_layers, bidirectional=hp.bidirectional)
        self.question = nn.Linear(hp.hidden_size * (2 if hp.bidirectional else 1), d)  # W_q
        self.drop = nn.Dropout(hp.dropout)
        width = d
        if hp.image:
            self.norm, self.project, _ = grid_adapter(
                self.encoder.out_channels, d - 2 if hp.coordinates else d, hp.feature_layers, hp.coordinates
            )
            if hp.attention == "stacked":
                keys = [d] + [d + 2 if hp.relative else d] * (hp.hops - 1)  # [v_i; (x_i, y_i) - c^{k-1}]
                self.hops = nn.ModuleList(Attention(d, m, hp.score, hp.attention_dim) for m in keys)
                if hp.shift:  # W_S of each hop after the first
                    self.shifts = nn.ModuleList(nn.Linear(d, (2 * hp.shift + 1) ** 2) for _ in range(hp.hops - 1))
            else:
                width = 2 * d
        self._supervised_types = self.supervised_type_ids()
        A = len(hp.answer_names)
        hidden = hp.classifier_hidden
        self.classifier = (
            nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(hp.dropout), nn.Linear(hidden, A))
            if hidden
            else nn.Linear(width, A)
        )

    def supervised_type_ids(self) -> Optional[List[int]]:
        """The indices of ``supervise_types`` among the data's question types (``None``: every type);
        a type the data does not have is a ``ValueError`` when the hops are supervised."""
        hp = self.hparams
        if not hp.attention_supervision or hp.supervise_types is None:
            return None
        types = list(hp.question_types or [])
        unknown = sorted(set(hp.supervise_types) - set(types))
        if unknown:
            raise ValueError(f"supervise_types names {unknown}, which the data does not have; its question types: {types}")
        return [types.index(t) for t in hp.supervise_types]

    # ---- the model ---------------------------------------------------------------------------------
    def encode_question(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """``u^0 = W_q h_T``: ``(B, d)``."""
        out = self.rnn(self.embed(ids), lengths=lengths)
        return self.question(self.drop(top_state(out.state, 2 if self.hparams.bidirectional else 1)))

    def image_grid(self, images: Tensor) -> Tensor:
        """``v_1..v_L``: ``(B, L, d)``."""
        v = self.adapted_grid({"images": images})
        if self.hparams.coordinates:  # (x, y) kept as they are: the place a hop attends is in its context
            v = torch.cat([v, grid_coordinates(v.shape[1], v).expand(v.shape[0], -1, -1)], -1)
        return v

    def forward(self, batch: Dict[str, Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        """``(logits (B, A), attention (B, K, L) or None)``."""
        u = self.encode_question(batch["ids"], batch["lengths"])
        if not self.hparams.image:
            return self.classifier(u), None
        v = self.image_grid(batch["images"])
        if self.hparams.attention == "none":
            return self.classifier(torch.cat([v.mean(1), u], -1)), None
        hops: List[Tensor] = []
        places = grid_coordinates(v.shape[1], v) if self.hparams.relative else None  # (1, L, 2): (x_i, y_i)
        offsets = grid_offsets(v.shape[1], self.hparams.shift, v.device) if self.hparams.shift else None  # (L, L)
        for k, attend in enumerate(self.hops):
            keys = bias = None
            if hops and self.hparams.relative:
                looked = torch.einsum("bl,xlc->bc", hops[-1], places)  # c^{k-1} = sum_i p^{k-1}_i (x_i, y_i)
                keys = attend.project(torch.cat([v, places - looked.unsqueeze(1)], -1))  # [v_i; (x_i, y_i) - c^{k-1}]
            if hops and offsets is not None:
                kernel = self.shifts[k - 1](u)  # K^k = W_S u^{k-1}
                bias = torch.einsum("bj,bij->bi", hops[-1], kernel[:, offsets])  # sum_j p^{k-1}_j K^k[offset(i, j)]
            context, p = attend(
                u, v, projected=keys, bias=bias
            )  # v~^k = sum_i p^k_i v_i, p^k = softmax_i(w_P^T tanh(W_I v_i + W_Q u^{k-1} + b_A) + bias_i)
            u = context + u  # u^k = v~^k + u^{k-1}
            hops.append(p)
        return self.classifier(u), torch.stack(hops, 1)

    # ---- inference ---------------------------------------------------------------------------------
    def encode_questions(self, questions: Sequence[str]) -> Tuple[List[List[int]], List[List[str]]]:
        """Token ids of each question, and the words the model never saw in training (read as
        ``<unk>``). An empty question, one with no word the model knows (punctuation aside), or one
        longer than ``question_max_tokens`` (the training limit) is a ``ValueError`` naming it."""
        ids, unknown = [], []
        limit = self.hparams.question_max_tokens
        for question in questions:
            if not isinstance(question, str):
                raise InputError(f"a question must be a string, got a {type(question).__name__}")
            encoding = self.tokenizer.encode(question, add_special_tokens=False)
            if not encoding.ids:
                raise InputError(f"the question {question!r} is empty: nothing to answer")
            pieces = [question[a:b] for a, b in encoding.offsets]
            if all(i == UNK_ID for piece, i in zip(pieces, encoding.ids) if any(c.isalnum() for c in piece)):
                # not one known word (punctuation aside): the answer would be the answers' prior, not an answer
                raise InputError(
                    f"the question {question[:80]!r} has no word this model knows (its training questions' "
                    "vocabulary): nothing to answer"
                )
            if limit is not None and len(encoding.ids) > limit:
                raise InputError(
                    f"the question {question[:80]!r} has {len(encoding.ids)} tokens; this model reads at most "
                    f"{limit} (the longest questions it was trained on): shorten it"
                )
            ids.append(encoding.ids)
            unknown.append([piece for piece, i in zip(pieces, encoding.ids) if i == UNK_ID])
        return ids, unknown

    def answer_batch(self, batch: Dict[str, Tensor], top: int = 3) -> List[Dict[str, Any]]:
        """Per example ``{"answer", "probability", "top" [(answer, p)], "attention" (K, L) or None}``."""
        with evaluating(self):
            logits, hops = self(batch)
        probs = torch.softmax(logits.float(), -1)
        best = probs.topk(min(top, probs.shape[-1]), -1)
        names = self.hparams.answer_names
        results = []
        for b in range(probs.shape[0]):
            pairs = [(names[int(k)], float(p)) for p, k in zip(best.values[b], best.indices[b])]
            results.append(
                {
                    "answer": pairs[0][0],
                    "probability": pairs[0][1],
                    "top": pairs,
                    "attention": None if hops is None else hops[b].float().cpu(),
                }
            )
        return results

    def predict(self, inputs: Any, batch_size: int = 16, top: int = 3) -> List[Dict[str, Any]]:
        """Answer ``(image, question)`` pairs (an image: a path, PIL image or uint8 ``(H, W, 3)`` array):
        ``[{"image", "question", "answer", "probability", "top", "attention" (K, L) or None,
        "unknown_words"}]``. A single pair may be passed as it is."""
        self.check_built()
        if isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[1], str):
            inputs = [inputs]
        pairs = list(inputs)
        ids, unknown = self.encode_questions([q for _, q in pairs])
        results: List[Dict[str, Any]] = []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            rows = ids[start : start + batch_size]
            lengths = torch.tensor([len(r) for r in rows])
            padded = torch.full((len(rows), int(lengths.max())), PAD_ID, dtype=torch.long)
            for k, r in enumerate(rows):
                padded[k, : len(r)] = torch.tensor(r)
            batch = {"ids": padded.to(self.device), "lengths": lengths}
            if self.hparams.image:
                batch["images"] = self.image_batch([image for image, _ in chunk])
            for k, ((image, question), result) in enumerate(zip(chunk, self.answer_batch(batch, top))):
                results.append(
                    {
                        "image": self.image_name(image, start + k),
                        "question": question,
                        **result,
                        "unknown_words": unknown[start + k],
                    }
                )
        return results

    def predict_step(self, batch: Dict[str, Any], batch_idx: int = 0) -> List[Dict[str, Any]]:
        """The dicts of :meth:`predict` for a batch of the datamodule (``index``: the example's position)."""
        return [
            {"index": int(i), "question": q, **r} for i, q, r in zip(batch["index"], batch["question"], self.answer_batch(batch))
        ]

    # ---- training and evaluation -------------------------------------------------------------------
    def training_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Tensor:
        logits, hops = self(batch)
        answered = (batch["answer"] >= 0).sum()
        loss = F.cross_entropy(logits.float(), batch["answer"], ignore_index=-100) if answered else logits.sum() * 0.0
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["answer"]))
        loss = self.global_mean(loss, answered)
        if self.hparams.attention_supervision:
            loss = loss + self.hparams.attention_supervision * self.where_to_look_loss(batch, hops)
        return loss

    def supervised_rows(self, question_type: Tensor) -> Tensor:
        """``(B,)`` bool: the questions whose type is in ``supervise_types`` (all if it is ``None``)."""
        if self._supervised_types is None:
            return torch.ones_like(question_type, dtype=torch.bool)
        return torch.isin(question_type, torch.tensor(self._supervised_types, device=question_type.device))

    def where_to_look_loss(self, batch: Dict[str, Tensor], hops: Tensor) -> Tensor:
        """``-log sum_{i in R^1} p^1_i - log sum_{i in R^K} p^K_i`` (each averaged over the questions
        about one object, over the global batch), logged as ``train/attn_loss``."""
        if "target_boxes" not in batch or "named_boxes" not in batch:
            raise ValueError(
                "attention_supervision needs the boxes of the objects each question is about (target_boxes, "
                f"named_boxes); {type(self.datamodule).__name__} gives none: set model.attention_supervision: 0"
            )
        L, size = hops.shape[-1], float(batch["images"].shape[-1])
        chosen = self.supervised_rows(batch["question_type"])
        taught_hops = [(0, "named_boxes"), (-1, "target_boxes")] if hops.shape[1] > 1 else [(-1, "target_boxes")]
        total = hops.new_zeros(())
        for hop, key in taught_hops:
            taught = (batch[f"{key}_mask"].sum(-1) == 1) & chosen
            region = cells_in_boxes(batch[key], batch[f"{key}_mask"], L, size) & taught[:, None]
            total = total + self.global_mean(attention_supervision_loss(hops[:, hop].float(), region), region.any(-1).sum())
        self.log("train/attn_loss", total, batch_size=len(batch["answer"]))
        return total

    def start_eval(self) -> None:
        self._eval = {"scores": [], "types": [], "measures": {}}

    def eval_step(self, batch: Dict[str, Tensor], batch_idx: int, split: str) -> None:
        logits, hops = self(batch)
        B = len(batch["answer"])
        if (batch["answer"] >= 0).any():
            self.log(
                f"{split}/loss", F.cross_entropy(logits.float(), batch["answer"], ignore_index=-100), sync_dist=True, batch_size=B
            )
        choice = logits.argmax(-1)
        self._eval["scores"].append(batch["answer_scores"].gather(1, choice[:, None])[:, 0].float())
        self._eval["types"].append(batch["question_type"])
        predictions = [{"answer": int(c), "attention": None if hops is None else hops[b]} for b, c in enumerate(choice)]
        for name, values in self.data_measures(batch, predictions).items():
            self._eval["measures"].setdefault(name, []).extend(values)
        n = self.figures_due(split, batch_idx) if hops is not None else 0
        for k, (i, q, c) in enumerate(zip(batch["index"][:n], batch["question"][:n], choice[:n])):
            said = f"{q} -> {self.hparams.answer_names[int(c)]}"
            self.figures.append(Figure(int(i), hop_titles(hops.shape[1]), hops[k].float().cpu(), said, title=said))

    def epoch_scores(self, split: str) -> Dict[str, float]:
        if not self._eval.get("scores"):
            return {}
        scores = np.asarray(gather_lists(torch.cat(self._eval["scores"]).tolist()))
        types = np.asarray(gather_lists(torch.cat(self._eval["types"]).tolist()))
        result = {"acc": float(scores.mean())}
        for k, name in enumerate(self.hparams.question_types or []):
            if (types == k).any():
                result[f"acc_{name}"] = float(scores[types == k].mean())
        for name, values in sorted(self._eval["measures"].items()):
            values = gather_lists(values)
            if values:
                result[name] = float(np.mean(values))
        for name, value in result.items():
            self.log(f"{split}/{name}", value, prog_bar=name == "acc", rank_zero_only=True)
        return result

    # ---- export (zoo.export) ------------------------------------------------------------------------
    def export_graphs(self, batch: int = 2, length: int = 5) -> List[Graph]:
        """``answer``: ``ids (B, T), lengths (B,) [, images (B, 3, S, S)] -> probs (B, A) [, attention
        (B, K, L)]`` -- the question's token ids (the exported tokenizer's), the normalised images as
        the datamodule gives them, every answer's probability and each hop's attention over the grid."""
        gen = torch.Generator().manual_seed(0)
        inputs = {
            "ids": torch.randint(4, self.tokenizer.get_vocab_size(), (batch, length), generator=gen),
            "lengths": torch.arange(length, length - batch, -1).clamp(min=1),
        }
        if self.hparams.image:
            size = self.image_config().size
            inputs["images"] = torch.rand(batch, 3, size, size, generator=gen)
        outputs = ["probs"] + (["attention"] if self.hparams.image and self.hparams.attention == "stacked" else [])
        return [Graph("answer", AnswerForward(self), inputs, outputs, batch_axes(inputs, {}, {"ids": (1, "time")}))]


def hop_titles(hops: int) -> List[str]:
    """The panel titles of a SAN figure: one per attention hop."""
    return [f"hop {k + 1}" for k in range(hops)]


class AnswerForward(nn.Module):
    """The answerer as a graph: every answer's probability (and each hop's attention) for a batch of
    questions (token ids and lengths) about images."""

    def __init__(self, model: VisualQuestionAnswerer) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor, images: Optional[Tensor] = None):
        batch = {"ids": ids, "lengths": lengths, **({"images": images} if images is not None else {})}
        logits, hops = self.model(batch)
        probs = torch.softmax(logits.float(), -1)
        return (probs,) if hops is None else (probs, hops)
