"""`Seq2Seq`: many-to-many with an encoder and a decoder — translation.

The encoder reads the whole source ("many-to-one"), the decoder writes the target one token at a time
("one-to-many"), each token conditioned on the ones before it:

    m_1..m_S, h_S = Encoder(E_src[x_1] .. E_src[x_S])     any cell family, deep, bidirectional
    z = [h_S^fwd ; h_1^bwd]                               the top layer's final states: a summary
    s_0 = tanh(W_b z + b_b)                               the bridge: the decoder's initial state

and for t = 1..T, with y_0 = <bos> and y_{t-1} the previous target token (teacher forcing) or the
model's own previous guess:

    attention="none" (the lecture's plain encoder-decoder; Cho et al. 2014 feed z at every step):
        s_t = Dec([E_tgt[y_{t-1}] ; z], s_{t-1});               c_t = z
    attention="additive" (Bahdanau et al. 2015: attend with the previous state, then step):
        c_t, a_t = attend(s_{t-1}, m);   s_t = Dec([E_tgt[y_{t-1}] ; c_t], s_{t-1})
    attention="dot" | "general" (Luong et al. 2015: step, then attend with the new state):
        s_t = Dec(E_tgt[y_{t-1}], s_{t-1});   c_t, a_t = attend(s_t, m)

    o_t = tanh(W_o [s_t ; c_t])                           the attentional hidden state
    p(y_t | y_<t, x) = softmax(W_y o_t + b_y)             W_y = E_tgt with ``tie_embeddings``

``attend`` is :class:`zoo.attention.Attention` with the source padding masked: a_t sums to 1 over the
real source tokens. With full teacher forcing, ``none``, ``dot`` and ``general`` run the decoder RNN
over all target steps in one call (its inputs do not depend on attention) and attend for every step in
one batched matmul: much faster than a Python loop. ``additive`` (whose inputs need c_t) and teacher
forcing below 1 (whose inputs need the previous prediction) run step by step; so does decoding.

Decoding is :func:`zoo.decoding.greedy_decode` / :func:`zoo.decoding.beam_search` (batched, length
penalty, attention weights returned) over :meth:`Seq2Seq.decode_step`. Metrics: ``val/loss``, ``val/ppl``
(token-level, without label smoothing), ``val/bleu`` (greedy, every validation) and ``test/bleu``
(beam search, ``beam_size``): corpus sacreBLEU x 100 on detokenized, cased text (``bleu_tokenize``,
default ``13a``, sacreBLEU's standard), through torchmetrics.

Edge cases: an empty source sentence translates to the empty string (:meth:`predict`; inside a
batch it is read as a single padding token); a source longer than any seen in training is read
whole (no length limit in a recurrent encoder) and the output may run to
``max_len_a * |source| + max_len_b`` tokens.

The tokenizers travel with the model (``source_tokenizer_json``, ``target_tokenizer_json``, taken from
the datamodule at setup), so a checkpoint translates raw sentences by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.text import SacreBLEUScore

from datamodules.tokenizers import BOS_ID, EOS_ID, PAD_ID, detokenize, encode_sentence, load_tokenizer
from zoo.attention import Attention
from zoo.decoding import Decoded, beam_search, greedy_decode, map_state
from zoo.graphs import Graph, batch_axes, next_names, state_args, state_outs
from zoo.recurrent import Recurrent
from zoo.sequences import evaluating, hidden_of, lengths_to_mask, top_state
from zoo.streaming import Stream, as_ids
from zoo.tasks.base import Optimiser, TaskModule
from zoo.viz import alignment_figure, figure_array

ATTENTIONS = ("none", "additive", "dot", "general")


@dataclass
class Encoded:
    """What the decoder reads of a batch of sources: ``memory`` (B, S, D*H) the encoder's outputs,
    ``keys`` their query-independent attention projection, ``mask`` (B, S) True at real tokens,
    ``summary`` (B, D*H) = z."""

    memory: Tensor
    keys: Optional[Tensor]
    mask: Tensor
    summary: Tensor


class Seq2Seq(TaskModule):
    data_hparams = {"source_tokenizer_json": "source_tokenizer_json", "target_tokenizer_json": "target_tokenizer_json"}
    required_data = ("source_tokenizer_json", "target_tokenizer_json")
    must_match = required_data
    exported_settings = ("max_len_a", "max_len_b")
    #: the longest source :meth:`predict` reads, in tokens, unless told (Multi30k's sentences, what the
    #: models are trained on, are under 100): a longer one is cut before the encoder, and its result says
    #: so (``truncated_from``), since encoding and decoding grow with the source (issue 28: 10,000 words
    #: took 263 s and 8.4 GB)
    max_source_tokens = 256
    optimiser = Optimiser(lr=2e-3, weight_decay=0.01, warmup_steps=200, min_lr_ratio=0.05, grad_clip=1.0)
    sizes = {**TaskModule.sizes, "decoder_hidden_size": "width", "decoder_layers": "layers"}
    scorer = "score_translator"

    def __init__(
        self,
        source_tokenizer_json: Optional[str] = None,
        target_tokenizer_json: Optional[str] = None,
        cell: str = "gru",
        embedding_dim: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        decoder_hidden_size: Optional[int] = None,
        decoder_layers: int = 1,
        attention: str = "general",
        dropout: float = 0.3,
        embedding_dropout: float = 0.1,
        teacher_forcing: float = 1.0,
        label_smoothing: float = 0.1,
        tie_embeddings: bool = False,
        beam_size: int = 5,
        length_penalty: float = 0.6,
        max_len_a: float = 1.5,
        max_len_b: int = 10,
        bleu_tokenize: str = "13a",
        log_alignments: int = 1,
        backend: str = "native",
        **optimiser: Any,
    ) -> None:
        """
        Args:
            source_tokenizer_json, target_tokenizer_json: Hugging Face tokenizers as JSON strings;
                ``None`` = the datamodule's at setup. They set the vocabulary sizes.
            cell: ``rnn`` | ``gru`` | ``lstm``, for encoder and decoder.
            embedding_dim: source and target embedding width.
            hidden_size: width of each encoder direction; ``num_layers`` deep (the encoder), ``bidirectional``.
            decoder_hidden_size: the decoder's width; ``None`` = the encoder's output width (D * H),
                which ``dot`` attention needs. ``decoder_layers`` deep.
            attention: ``none`` | ``additive`` (Bahdanau) | ``dot`` | ``general`` (Luong).
            dropout: between recurrent layers and on o_t; ``embedding_dropout`` on embedded tokens.
            teacher_forcing: probability of feeding the true previous token in training (1.0 = always;
                below 1 the model's own greedy guess is fed otherwise, step by step).
            label_smoothing: of the training cross-entropy.
            tie_embeddings: the output layer shares the target embedding's weights (Press & Wolf 2017);
                o_t then has ``embedding_dim`` units.
            beam_size: beam width for testing, ``predict_step`` and :meth:`predict` (1 = greedy).
            length_penalty: GNMT's alpha (:func:`zoo.decoding.length_penalty`), 0 = none.
            max_len_a, max_len_b: a translation stops after ``a * source length + b`` tokens.
            bleu_tokenize: sacreBLEU's tokenizer for scoring detokenized text (``13a``, ``intl``, ...).
            log_alignments: alignment heatmaps logged per validation (0 = none).
            **optimiser: the shared optimiser arguments ``lr``, ``weight_decay``, ``warmup_steps``,
                ``min_lr_ratio``, ``grad_clip`` (:class:`~zoo.tasks.base.Optimiser`); this task's defaults: ``optimiser``.
            backend: ``native`` | ``cells`` recurrent backend.
        """
        super().__init__(**optimiser)
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}: expected one of {ATTENTIONS}")
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}")
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        self.save_hyperparameters()
        self._tokenizers: Dict[str, Any] = {}
        self._val: Dict[str, Any] = {}
        self.build_if_ready()

    # ---- construction ----------------------------------------------------------------------------
    def build(self) -> None:
        hp = self.hparams
        src_vocab = self.tokenizer("source").get_vocab_size()
        tgt_vocab = self.tokenizer("target").get_vocab_size()
        self.src_embed = nn.Embedding(src_vocab, hp.embedding_dim, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(tgt_vocab, hp.embedding_dim, padding_idx=PAD_ID)
        self.embed_drop = nn.Dropout(hp.embedding_dropout)
        self.encoder = Recurrent(
            hp.embedding_dim,
            hp.hidden_size,
            hp.cell,
            hp.num_layers,
            bidirectional=hp.bidirectional,
            dropout=hp.dropout,
            backend=hp.backend,
        )
        memory_size = self.encoder.output_size
        dec_size = hp.decoder_hidden_size or memory_size
        self.bridge = nn.Linear(memory_size, hp.decoder_layers * dec_size)
        feeds_context = hp.attention in ("none", "additive")
        self.decoder = Recurrent(
            hp.embedding_dim + (memory_size if feeds_context else 0),
            dec_size,
            hp.cell,
            hp.decoder_layers,
            dropout=hp.dropout,
            backend=hp.backend,
        )
        self.attention = None if hp.attention == "none" else Attention(dec_size, memory_size, hp.attention)
        out_size = hp.embedding_dim if hp.tie_embeddings else dec_size
        self.combine = nn.Linear(dec_size + memory_size, out_size)  # W_o [s_t ; c_t]
        self.out_drop = nn.Dropout(hp.dropout)
        self.generator = nn.Linear(out_size, tgt_vocab)
        if hp.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight
        self.bleu = nn.ModuleDict({s: SacreBLEUScore(tokenize=hp.bleu_tokenize) for s in ("val", "test")})
        self.token_nll = nn.ModuleDict({s: MeanMetric() for s in ("val", "test")})  # per-token mean, for perplexity

    def tokenizer(self, side: str):
        """The ``source`` or ``target`` tokenizer."""
        if side not in self._tokenizers:
            text = self.hparams[f"{side}_tokenizer_json"]
            if text is None:
                raise RuntimeError(f"this Seq2Seq has no {side} tokenizer yet (it is set at setup from the datamodule)")
            self._tokenizers[side] = load_tokenizer(text)
        return self._tokenizers[side]

    # ---- encoder -----------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_lengths: Tensor) -> Encoded:
        """Read the sources ``(B, S)``: memory, mask, summary z."""
        lengths = src_lengths.clamp(min=1)  # an empty source is read as one padding token
        out = self.encoder(self.embed_drop(self.src_embed(src)), lengths=lengths)
        summary = top_state(out.state, self.encoder.num_directions)
        keys = self.attention.project(out.output) if self.attention is not None else None
        return Encoded(out.output, keys, lengths_to_mask(lengths.to(src.device), src.shape[1]), summary)

    def initial_state(self, enc: Encoded):
        """s_0 = tanh(W_b z + b_b) for every decoder layer (an LSTM's memory cell, and a modern
        family's other state tensors, start at zero: :meth:`Recurrent.initial_state`)."""
        layers, size = self.hparams.decoder_layers, self.decoder.hidden_size
        h0 = torch.tanh(self.bridge(enc.summary)).view(-1, layers, size).transpose(0, 1).contiguous()
        return self.decoder.initial_state(h0.shape[1], h0, hidden=h0)

    # ---- decoder -----------------------------------------------------------------------------------
    def _output(self, s: Tensor, context: Tensor) -> Tensor:
        """Logits from o = tanh(W_o [s ; c])."""
        return self.generator(self.out_drop(torch.tanh(self.combine(torch.cat([s, context], -1)))))

    def decode_step(self, prev: Tensor, state, enc: Encoded):
        """One decoder step: previous tokens ``(N,)`` and state → ``(logits (N, V), state, weights (N, S) or None)``.
        ``enc`` holds the N sources, or N / K of them with K rows of ``prev`` each (rows ``n*K ..
        n*K + K-1``: a beam's hypotheses), each source's memory then read once for its K rows."""
        e = self.embed_drop(self.tgt_embed(prev))
        kind, weights = self.hparams.attention, None
        if kind == "none":
            summary = enc.summary.repeat_interleave(prev.shape[0] // enc.summary.shape[0], 0)
            x, context = torch.cat([e, summary], -1), summary
        elif kind == "additive":  # attend with s_{t-1}, then step
            context, weights = self._attend(hidden_of(state)[-1], enc)
            x = torch.cat([e, context], -1)
        else:
            x = e
        out = self.decoder(x.unsqueeze(1), state=state)
        s = out.output[:, 0]
        if kind in ("dot", "general"):  # step, then attend with s_t
            context, weights = self._attend(s, enc)
        return self._output(s, context), out.state, weights

    def _attend(self, query: Tensor, enc: Encoded) -> tuple[Tensor, Tensor]:
        """Attention of ``query`` ``(N, H)`` over ``enc``'s sources: one per row, or K rows per source
        (as K queries of one source: ``(N / K, K, H)``)."""
        K = query.shape[0] // enc.memory.shape[0]
        if K == 1:
            return self.attention(query, enc.memory, enc.mask, enc.keys)
        context, weights = self.attention(query.view(-1, K, query.shape[-1]), enc.memory, enc.mask, enc.keys)
        return context.flatten(0, 1), weights.flatten(0, 1)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0) -> Dict[str, Tensor]:
        """Logits ``(B, T, V)`` for predicting ``tgt_in``'s next tokens, and the attention ``(B, T, S)``
        (``None`` without attention). ``tgt_in`` = the targets without their last token (starts with <bos>)."""
        enc = self.encode(src, src_lengths)
        state = self.initial_state(enc)
        kind = self.hparams.attention
        if teacher_forcing >= 1.0 and kind != "additive":
            # Every step's input is known: the RNN runs over all T steps in one call.
            e = self.embed_drop(self.tgt_embed(tgt_in))
            if kind == "none":
                e = torch.cat([e, enc.summary.unsqueeze(1).expand(-1, e.shape[1], -1)], -1)
            s = self.decoder(e, state=state).output  # (B, T, H); positions past a target's end are ignored by the loss
            if kind == "none":
                context, weights = enc.summary.unsqueeze(1).expand(-1, s.shape[1], -1), None
            else:
                context, weights = self.attention(s, enc.memory, enc.mask, enc.keys)
            return {"logits": self._output(s, context), "attention": weights}
        logits, alphas, prev = [], [], tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            step_logits, state, weights = self.decode_step(prev, state, enc)
            logits.append(step_logits)
            alphas.append(weights)
            if t + 1 < tgt_in.shape[1]:
                prev = tgt_in[:, t + 1]
                if teacher_forcing < 1.0:
                    guess = step_logits.detach().argmax(-1)
                    use_truth = torch.rand(prev.shape, device=prev.device) < teacher_forcing
                    prev = torch.where(use_truth | (prev == PAD_ID), prev, guess)
        return {"logits": torch.stack(logits, 1), "attention": None if alphas[0] is None else torch.stack(alphas, 1)}

    # ---- search -----------------------------------------------------------------------------------
    def _search_state(self, state):
        # decoding.py wants hypotheses first; torch's RNN state is (layers, N, H).
        return map_state(state, lambda t: t.transpose(0, 1))

    def _rnn_state(self, state):
        return map_state(state, lambda t: t.transpose(0, 1).contiguous())

    @torch.no_grad()
    def search(self, src: Tensor, src_lengths: Tensor, beam_size: Optional[int] = None, max_len: Optional[int] = None) -> Decoded:
        """Translate a batch: greedy (``beam_size=1``) or batched beam search. ``extras["attention"]``
        ``(B, T, S)`` holds each emitted token's attention (when the model attends). Each sentence may
        emit ``max_len`` tokens, by default ``max_len_a * its length + max_len_b``, so a sentence
        translates the same in any batch."""
        hp = self.hparams
        beam_size = hp.beam_size if beam_size is None else beam_size
        max_lens = max_len or (hp.max_len_a * src_lengths.double() + hp.max_len_b).long()
        enc = self.encode(src, src_lengths)
        state = self._search_state(self.initial_state(enc))

        def step(tokens: Tensor, state, enc: Encoded, normalise: bool = True):
            logits, state, weights = self.decode_step(tokens, self._rnn_state(state), enc)
            extras = {} if weights is None else {"attention": weights}
            return torch.log_softmax(logits.float(), -1) if normalise else logits, self._search_state(state), extras

        common = dict(batch_size=src.shape[0], bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID, device=src.device)
        if beam_size == 1:
            return greedy_decode(
                lambda tokens, state: step(tokens, state, enc), state, max_len=int(torch.as_tensor(max_lens).max()), **common
            )
        # The encoder's output is the search's context, one row per sentence (read once for its
        # hypotheses, not copied for each): sentences already translated leave the batch.
        # The search normalises the logits it keeps (cheaper than a log-softmax over the vocabulary).
        return beam_search(
            partial(step, normalise=False),
            state,
            max_len=max_lens,
            beam_size=beam_size,
            alpha=hp.length_penalty,
            context=enc,
            expand_context=False,
            logits=True,
            **common,
        )

    def detokenize(self, ids: Sequence[int]) -> str:
        return detokenize(self.tokenizer("target"), list(ids))

    def pieces(self, side: str, ids: Sequence[int]) -> List[str]:
        """Token strings (subword pieces) of ``ids``, for alignment pictures."""
        tok = self.tokenizer(side)
        return [tok.id_to_token(int(i)) or "<unk>" for i in ids]

    def _results(self, src: Tensor, src_lengths: Tensor, decoded: Decoded) -> List[Dict[str, Any]]:
        results = []
        for b in range(src.shape[0]):
            n = int(decoded.lengths[b])
            ids = decoded.tokens[b, :n].tolist()
            s = int(src_lengths[b])
            result = {
                "translation": self.detokenize(ids),
                "score": float(decoded.scores[b]),
                "source_tokens": self.pieces("source", src[b, :s].tolist()),
                "target_tokens": self.pieces("target", ids),
                "finished": bool(decoded.finished[b]),
            }
            if "attention" in decoded.extras:
                result["attention"] = decoded.extras["attention"][b, :n, :s].float().cpu()
            results.append(result)
        return results

    def predict(
        self,
        sentences: Sequence[str] | str,
        beam_size: Optional[int] = None,
        batch_size: int = 64,
        max_len: Optional[int] = None,
        max_source_tokens: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Translate raw sentences: one dict per sentence with ``source``, ``translation`` (detokenized
        text), ``score``, ``source_tokens``, ``target_tokens``, ``finished`` and, with attention,
        ``attention`` ``(target tokens, source tokens)``. Empty sentences translate to ``""``. A source
        longer than ``max_source_tokens`` (default :attr:`max_source_tokens`) is cut to it before the
        encoder; its dict then holds ``truncated_from``, the source's length in tokens."""
        self.check_built()
        if isinstance(sentences, str):
            sentences = [sentences]
        with evaluating(self):
            return self._predict(list(sentences), beam_size, batch_size, max_len, max_source_tokens or self.max_source_tokens)

    def _predict(
        self, sentences: List[str], beam_size: Optional[int], batch_size: int, max_len: Optional[int], limit: int
    ) -> List[Dict[str, Any]]:
        tok = self.tokenizer("source")
        encoded = [encode_sentence(tok, s) for s in sentences]
        cut = {i: len(ids) for i, ids in enumerate(encoded) if len(ids) > limit}
        encoded = [ids[:limit] for ids in encoded]
        results: List[Optional[Dict[str, Any]]] = [None] * len(sentences)
        order = [i for i in sorted(range(len(encoded)), key=lambda i: -len(encoded[i])) if encoded[i]]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            lengths = torch.tensor([len(encoded[i]) for i in rows])
            src = torch.full((len(rows), int(lengths.max())), PAD_ID, dtype=torch.long)
            for r, i in enumerate(rows):
                src[r, : len(encoded[i])] = torch.tensor(encoded[i])
            src, lengths = src.to(self.device), lengths.to(self.device)
            for i, result in zip(rows, self._results(src, lengths, self.search(src, lengths, beam_size, max_len))):
                results[i] = result
        for i, sentence in enumerate(sentences):
            if results[i] is None:
                results[i] = {"translation": "", "score": 0.0, "source_tokens": [], "target_tokens": [], "finished": True}
            results[i] = {"source": sentence, **results[i], **({"truncated_from": cut[i]} if i in cut else {})}
        return results  # type: ignore[return-value]

    # ---- training and evaluation --------------------------------------------------------------------
    def _loss(self, batch: Dict[str, Any], teacher_forcing: float, smoothing: float) -> tuple[Tensor, Tensor, int]:
        tgt = batch["tgt"]
        out = self(batch["src"], batch["src_lengths"], tgt[:, :-1], teacher_forcing)
        logits, gold = out["logits"].float(), tgt[:, 1:]
        flat = logits.reshape(-1, logits.shape[-1])
        loss = F.cross_entropy(flat, gold.reshape(-1), ignore_index=PAD_ID, label_smoothing=smoothing)
        nll = F.cross_entropy(flat, gold.reshape(-1), ignore_index=PAD_ID) if smoothing else loss
        tokens = int((gold != PAD_ID).sum())
        return self.global_mean(loss, tokens), nll.detach(), tokens  # over the global batch's tokens under DDP

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Tensor:
        hp = self.hparams
        loss, nll, tokens = self._loss(batch, hp.teacher_forcing, hp.label_smoothing)
        self.log("train/loss", loss, prog_bar=True, batch_size=tokens)
        self.log("train/nll", nll, batch_size=tokens)
        return loss

    def _eval_step(self, batch: Dict[str, Any], batch_idx: int, split: str) -> None:
        _, nll, tokens = self._loss(batch, 1.0, 0.0)
        self.log(f"{split}/loss", nll, prog_bar=True, sync_dist=True, batch_size=tokens)
        self.token_nll[split].update(nll, weight=tokens)
        beam = 1 if split == "val" else self.hparams.beam_size  # greedy in validation: fast enough to run often
        results = self._results(batch["src"], batch["src_lengths"], self.search(batch["src"], batch["src_lengths"], beam))
        self.bleu[split].update([r["translation"] for r in results], [[ref] for ref in batch["tgt_text"]])
        if split == "val" and batch_idx == 0 and self.hparams.log_alignments and not self.trainer.sanity_checking:
            self._val["figures"] = [r for r in results if "attention" in r][: self.hparams.log_alignments]

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    def _log_epoch_metrics(self, split: str) -> None:
        # torchmetrics gives BLEU in [0, 1]; papers and sacreBLEU print it x 100.
        self.log(f"{split}/bleu", self.bleu[split].compute() * 100, prog_bar=True)
        # Perplexity of the whole split, exp(mean NLL per token): not a mean of per-batch perplexities.
        self.log(f"{split}/ppl", torch.exp(self.token_nll[split].compute()))
        self.bleu[split].reset()
        self.token_nll[split].reset()

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")
        figures = self._val.pop("figures", None)
        if not figures or not self.trainer.is_global_zero:
            return
        pictures = [figure_array(alignment_figure(r["source_tokens"], r["target_tokens"], r["attention"])) for r in figures]
        self.log_images("val/alignment", pictures, [r["translation"] for r in figures])

    def predict_step(self, batch: Dict[str, Any], batch_idx: int = 0) -> List[Dict[str, Any]]:
        """The dicts of :meth:`predict` for a batch of the datamodule (``source`` and ``index`` where
        the batch has them)."""
        results = self._results(batch["src"], batch["src_lengths"], self.search(batch["src"], batch["src_lengths"]))
        indices = batch.get("index", [None] * len(results))
        sources = batch.get("src_text", [None] * len(results))
        return [
            {"source": source, "index": None if index is None else int(index), **result}
            for result, index, source in zip(results, indices, sources)
        ]

    def stream(self, sentence: str) -> DecoderStream:
        """The decoder one token at a time over ``sentence`` encoded (:class:`DecoderStream`):
        ``stream.step(BOS_ID)`` -> the first token's log-probabilities, and so on."""
        self.check_built()
        ids = encode_sentence(self.tokenizer("source"), sentence) or [PAD_ID]  # empty: one padding token, as in a batch
        src = torch.tensor([ids], device=self.device)
        return DecoderStream(self, src, torch.tensor([len(ids)], device=self.device))

    # ---- export (zoo.export) ------------------------------------------------------------------------
    def export_graphs(self, batch: int = 2, length: int = 5) -> List[Graph]:
        """``encoder``: ``src (B, S), src_lengths (B,) -> memory, mask, summary [, keys], h [, c]``;
        ``decoder_step``: ``prev (B,), memory, mask, summary [, keys], h [, c] -> log_probs (B, V),
        h_next [, c_next] [, attention]``."""
        gen = torch.Generator().manual_seed(0)
        lstm = self.hparams.cell == "lstm"
        src = {
            "src": torch.randint(4, self.tokenizer("source").get_vocab_size(), (batch, length), generator=gen),
            "src_lengths": torch.arange(length, length - batch, -1).clamp(min=1),
        }
        with torch.no_grad():
            encoded = TranslatorEncoder(self)(**src)
        attends = self.attention is not None
        states = ["h", "c"] if lstm else ["h"]
        enc_names = ["memory", "mask", "summary"] + (["keys"] if attends else []) + states
        step = {
            "prev": torch.randint(4, self.tokenizer("target").get_vocab_size(), (batch,), generator=gen),
            **dict(zip(enc_names, encoded)),
        }
        dynamic = batch_axes(step, {"h": 1, "c": 1}, {"memory": (1, "source"), "mask": (1, "source"), "keys": (1, "source")})
        outs = ["log_probs", *next_names(states)] + (["attention"] if attends else [])
        return [
            Graph("encoder", TranslatorEncoder(self), src, enc_names, batch_axes(src, {}, {"src": (1, "source")})),
            Graph("decoder_step", TranslatorStep(self), step, outs, dynamic),
        ]


class TranslatorEncoder(nn.Module):
    """The encoder as a graph: the source's memory, mask, summary (and attention keys) and the decoder's first state."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: Tensor, src_lengths: Tensor):
        enc = self.model.encode(src, src_lengths)
        keys = () if enc.keys is None else (enc.keys,)
        return (enc.memory, enc.mask, enc.summary, *keys, *state_outs(self.model.initial_state(enc)))


class TranslatorStep(nn.Module):
    """One decoder step (:meth:`Seq2Seq.decode_step`) as a graph."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        prev: Tensor,
        memory: Tensor,
        mask: Tensor,
        summary: Tensor,
        h: Tensor,
        keys: Optional[Tensor] = None,
        c: Optional[Tensor] = None,
    ):
        logits, state, weights = self.model.decode_step(prev, state_args(h, c), Encoded(memory, keys, mask, summary))
        extra = () if weights is None else (weights,)
        return (torch.log_softmax(logits.float(), -1), *state_outs(state), *extra)


class DecoderStream(Stream):
    """A translator's decoder one token at a time over an encoded source (``model``: a ``Seq2Seq``;
    ``src`` ``(batch, S)`` ids, ``src_lengths`` ``(batch,)``). Call :meth:`step` with ``<bos>`` first."""

    def __init__(self, model: nn.Module, src: Tensor, src_lengths: Tensor) -> None:
        super().__init__(model, model.decoder)
        with torch.no_grad():
            self.encoded = model.encode(src, src_lengths)
            self.state = model.initial_state(self.encoded)
        self.attention: Optional[Tensor] = None

    @torch.no_grad()
    def step(self, previous: int | Sequence[int] | Tensor) -> Tensor:
        """The previous token per row ``(batch,)`` -> the next token's log-probabilities ``(batch, V)``."""
        ids = as_ids(previous, self.encoded.memory.device)
        logits, self.state, self.attention = self.model.decode_step(ids, self.state, self.encoded)
        self.steps += 1
        return torch.log_softmax(logits.float(), -1)
