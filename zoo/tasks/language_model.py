"""`CharLanguageModel`: many-to-many, synchronous — predict the next character at every step.

    x_t = onehot(c_t) or E[c_t]            (one-hot as in the lecture, or a learned embedding)
    h_t = Recurrent(x_t, h_{t-1})          (any cell family, any depth)
    p(c_{t+1} | c_<=t) = softmax(W_hy h_t + b_y)

Truncated backpropagation through time: the datamodule hands over consecutive windows of parallel
streams; the final state of one batch is the initial state of the next, *detached*, so gradients
flow back at most ``seq_len`` steps while the state carries information across the whole stream.
(Lightning 2 removed ``truncated_bptt_steps``; carrying the state ourselves keeps automatic
optimization, gradient clipping and mixed precision working as usual.)
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.text import Perplexity

from datamodules.tokenizers import decode_chars, encode_chars
from zoo.decoding import cap_run, sample_next
from zoo.errors import InputError
from zoo.graphs import Graph, batch_axes, next_names, state_args, state_inputs, state_outs
from zoo.recurrent import LSTM_INIT, Recurrent
from zoo.sequences import State, detach_state, evaluating, hidden_of, map_state
from zoo.streaming import Stream, as_ids
from zoo.tasks.base import Optimiser, TaskModule

#: the checkpoint entry holding the training state carried into the next window
CARRY_KEY = "zoo_carried_state"
#: the longest run of whitespace a sample may hold (``predict``'s rule). Real text stays under it: of the
#: python-stdlib corpus' whitespace runs (the README's main job) 99.8% are <= 32 characters (the
#: longest, 67, aligns continuation lines), Tiny Shakespeare's are <= 3.
MAX_WHITESPACE = 32


class CharLanguageModel(TaskModule):
    data_hparams = {"vocab": "vocab"}
    required_data = ("vocab",)
    must_match = ("vocab",)
    optimiser = Optimiser(lr=2e-3, weight_decay=0.0, warmup_steps=100, min_lr_ratio=0.1, grad_clip=1.0)
    scorer = "score_language_model"

    def __init__(
        self,
        vocab: Optional[List[str]] = None,
        cell: str = "lstm",
        embedding_dim: Optional[int] = 128,
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = 0.0,
        backend: str = "native",
        nonlinearity: str = "tanh",
        lstm_init: str = LSTM_INIT,
        residual: bool = False,
        **optimiser: Any,
    ) -> None:
        """
        Args:
            vocab: the characters (index 0 = unknown); ``None`` = take it from the datamodule at setup.
            cell: a family of :mod:`zoo.families` (``rnn``, ``gru``, ``lstm``, ``mingru``, ``minlstm``,
                ``rglru``, ``s6``, ``slstm``, ``mlstm``).
            embedding_dim: size of the learned character embedding; ``None`` or 0 = one-hot input.
            hidden_size, num_layers: width and depth of the recurrent stack.
            dropout: on the input, between layers and before the output layer.
            **optimiser: the shared optimiser arguments ``lr``, ``weight_decay``, ``warmup_steps``,
                ``min_lr_ratio``, ``grad_clip`` (:class:`~zoo.tasks.base.Optimiser`); this task's defaults: ``optimiser``.
            backend: ``native`` (torch's fused RNNs; minGRU/minLSTM: the parallel scan) or ``cells``
                (ours: gates inspectable).
            lstm_init: an LSTM's gate-bias initialisation, ``forget1`` | ``chrono`` | ``torch``
                (:func:`zoo.recurrent.init_lstm_biases`; a checkpoint's weights replace it).
            residual: every layer in a pre-norm residual block (:class:`~zoo.recurrent.Recurrent`'s
                ``residual``), as Griffin and Mamba stack RG-LRU and S6.
        """
        super().__init__(**optimiser)
        self.save_hyperparameters()
        self._carry: Dict[str, Optional[State]] = {"train": None, "val": None}
        self.build_if_ready()

    def build(self) -> None:
        hp = self.hparams
        self.vocab = list(hp.vocab)
        V = len(self.vocab)
        self.embed = nn.Embedding(V, hp.embedding_dim) if hp.embedding_dim else None
        self.drop = nn.Dropout(hp.dropout)
        self.rnn = Recurrent(
            hp.embedding_dim or V,
            hp.hidden_size,
            hp.cell,
            hp.num_layers,
            dropout=hp.dropout,
            backend=hp.backend,
            nonlinearity=hp.nonlinearity,
            lstm_init=hp.lstm_init,
            residual=hp.get("residual", False),
        )
        self.head = nn.Linear(hp.hidden_size, V)
        self.val_ppl = Perplexity()

    # ---- the model ---------------------------------------------------------------------------
    def inputs(self, ids: Tensor) -> Tensor:
        if self.embed is None:
            return F.one_hot(ids, len(self.vocab)).to(self.head.weight.dtype)
        return self.embed(ids)

    def forward(self, ids: Tensor, state: Optional[State] = None, return_hidden: bool = False, return_gates: bool = False):
        """``ids`` ``(batch, time)`` → logits ``(batch, time, vocab)`` and the final state
        (and the :class:`~zoo.recurrent.RecurrentOutput` when hidden states or gates are asked for)."""
        out = self.rnn(self.drop(self.inputs(ids)), state=state, return_hidden=return_hidden, return_gates=return_gates)
        logits = self.head(self.drop(out.output))
        if return_hidden or return_gates:
            return logits, out.state, out
        return logits, out.state

    # ---- truncated BPTT ----------------------------------------------------------------------
    def _step(self, batch: Dict[str, Tensor], split: str) -> tuple[Tensor, Tensor]:
        state = self._carry[split]
        if state is not None and hidden_of(state).shape[1] != batch["ids"].shape[0]:
            state = None
        logits, state = self(batch["ids"], state)
        self._carry[split] = detach_state(state)  # carried forward, but gradients stop here
        # the loss in float32 even under bf16 autocast: its log-sum-exp needs the precision
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten())
        return loss, logits

    def on_train_epoch_start(self) -> None:
        self._carry["train"] = None

    def on_validation_epoch_start(self) -> None:
        self._carry["val"] = None

    # A run resumed mid-epoch continues its streams (the datamodule restores their position) from the
    # state carried to there, as the uninterrupted run does: the state travels in the checkpoint.
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[CARRY_KEY] = self._carry["train"]

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        state = checkpoint.get(CARRY_KEY)
        self._carry["train"] = None if state is None else map_state(state, lambda t: t.to(self.device))

    def training_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._step(batch, "train")
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["targets"].numel())
        return loss

    def validation_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
        """``val/loss``: mean cross-entropy in nats per predicted validation character (windows weighted
        by their characters), the state carried from window to window: the pretrained cards' val_loss
        (:func:`datamodules.char_corpus.score_char_lm`). ``val/ppl`` = exp(val/loss)."""
        loss, logits = self._step(batch, "val")
        self.val_ppl.update(logits.float(), batch["targets"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["targets"].numel())
        self.log("val/ppl", self.val_ppl, prog_bar=True)

    def test_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
        loss, _ = self._step(batch, "val")
        self.log("test/loss", loss, sync_dist=True, batch_size=batch["targets"].numel())

    def predict_step(self, batch: Dict[str, Tensor], batch_idx: int = 0) -> List[Dict[str, Any]]:
        """Score the corpus' windows, state carried from window to window of each stream: per stream
        ``{"stream", "window", "prime" (the window's text), "text" (the same: nothing is generated),
        "nll" (mean nats per character of the window's targets)}``."""
        if batch_idx == 0:
            self._carry["val"] = None
        state = self._carry["val"]
        logits, state = self(batch["ids"], state)
        self._carry["val"] = detach_state(state)
        nll = F.cross_entropy(logits.float().transpose(1, 2), batch["targets"], reduction="none").mean(1)
        results = []
        for stream, (ids, value) in enumerate(zip(batch["ids"].tolist(), nll.tolist())):
            text = decode_chars(ids, self.vocab)
            results.append({"stream": stream, "window": batch_idx, "prime": text, "text": text, "nll": value})
        return results

    # ---- generation --------------------------------------------------------------------------
    def generate(
        self,
        prime: str = "\n",
        length: int = 500,
        temperature: float = 0.8,
        top_k: Optional[int] = None,
        seed: Optional[int] = None,
        max_whitespace: Optional[int] = MAX_WHITESPACE,
    ) -> str:
        """Prime the state with ``prime``, then sample ``length`` characters one at a time (``predict``'s rule)."""
        return self.predict([prime], length, temperature, top_k, seed, max_whitespace)[0]["text"]

    def predict(
        self,
        primes: str | Sequence[str],
        length: int = 500,
        temperature: float = 0.8,
        top_k: Optional[int] = None,
        seed: Optional[int] = None,
        max_whitespace: Optional[int] = MAX_WHITESPACE,
    ) -> List[Dict[str, Any]]:
        """Continue each prime: ``[{"prime", "text" (prime + generated), "nll" (mean nats per
        character of the prime after its first, ``None`` for a single character)}]``.

        The rule, char-rnn's plus one bound: ``length`` characters, each drawn from
        ``softmax(logits / temperature)`` (``temperature`` 0: greedy; ``top_k``: only the k likeliest;
        never the unknown symbol), except that a run of whitespace (spaces, tabs, newlines, counted
        together, the prime's last ones included) never grows past ``max_whitespace`` characters: at
        the bound the whitespace characters are masked and the next one is drawn from the rest
        (:func:`zoo.decoding.cap_run`). So a sample is never a run of whitespace, whatever the model
        prefers; ``None`` lifts the bound. ``seed`` makes the sample reproducible."""
        self.check_built()
        if isinstance(primes, str):
            primes = [primes]
        if any(not prime for prime in primes):
            raise InputError("prime must hold at least one character")
        if length < 0:
            raise InputError(f"length must be >= 0, got {length}")
        if max_whitespace is not None and max_whitespace < 1:
            raise InputError(f"max_whitespace must be >= 1 or None, got {max_whitespace}")
        whitespace = [i for i, c in enumerate(self.vocab) if c.isspace()]
        if len(whitespace) == len(self.vocab) - 1:  # nothing but whitespace (and the unknown) to draw: no bound
            whitespace = []
        whitespace = torch.tensor(whitespace, dtype=torch.long, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        unknown = torch.tensor([0], device=self.device)  # never emit the unknown symbol
        results = []
        with evaluating(self):
            for prime in primes:
                stream = self.stream()
                log_probs = stream.read(prime)  # (len(prime), V), the state carried into the sample
                ids = encode_chars(prime, self.vocab).to(self.device)
                nll = None
                if len(ids) > 1:
                    nll = float(F.nll_loss(log_probs[:-1], ids[1:]))
                log_probs, out = log_probs[-1:], []
                run = len(prime) - len(prime.rstrip())  # the whitespace the text ends in
                for _ in range(length):
                    logits = cap_run(log_probs.index_fill(-1, unknown, float("-inf")), run, max_whitespace, whitespace)
                    next_id = sample_next(logits, temperature, top_k, generator)
                    out.append(int(next_id))
                    run = run + 1 if self.vocab[out[-1]].isspace() else 0
                    log_probs = stream.step(next_id)
                results.append({"prime": prime, "text": prime + decode_chars(out, self.vocab), "nll": nll})
        return results

    def stream(self) -> CharStream:
        """Read and write one character at a time, the state carried (:class:`CharStream`):
        ``stream.step("a")`` -> the next character's log-probabilities."""
        self.check_built()
        return CharStream(self)

    # ---- export (zoo.export) ------------------------------------------------------------------------
    def export_graphs(self, batch: int = 2, length: int = 5) -> List[Graph]:
        """``lm_step``: ``ids (B,), h [, c] -> log_probs (B, V), h_next [, c_next]``."""
        gen = torch.Generator().manual_seed(0)
        rnn, lstm = self.rnn, self.hparams.cell == "lstm"
        inputs = {
            "ids": torch.randint(1, len(self.vocab), (batch,), generator=gen),
            **state_inputs(rnn.num_layers, batch, rnn.hidden_size, lstm, gen),
        }
        names = ["h", "c"] if lstm else ["h"]
        return [Graph("lm_step", LMStep(self), inputs, ["log_probs", *next_names(names)], batch_axes(inputs, {"h": 1, "c": 1}))]


class LMStep(nn.Module):
    """One step of the language model as a graph: the next character's log-probabilities and the state."""

    def __init__(self, model: CharLanguageModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, h: Tensor, c: Optional[Tensor] = None):
        logits, state = self.model(ids[:, None], state_args(h, c))
        return (F.log_softmax(logits[:, 0].float(), -1), *state_outs(state))


class CharStream(Stream):
    """A character LM read and written one character at a time (``model``: a ``CharLanguageModel``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, model.rnn)
        self.vocab: List[str] = model.vocab

    @torch.no_grad()
    def step(self, chars: str | Sequence[int] | Tensor) -> Tensor:
        """One character per row (a 1-character string for batch 1, or ids ``(batch,)``) -> the
        log-probabilities of the next character, ``(batch, vocab)``."""
        if isinstance(chars, str):
            if len(chars) != 1:
                raise InputError(f"step takes one character, got {len(chars)} ({chars[:20]!r}); use read for a text")
            chars = encode_chars(chars, self.vocab)
        ids = as_ids(chars, self.model.head.weight.device)
        return F.log_softmax(self.model.head(self.advance(self.model.inputs(ids))).float(), -1)

    @torch.no_grad()
    def read(self, text: str | Tensor) -> Tensor:
        """Feed a whole text (or ids ``(batch, time)``) at once, the state carried: the log-probabilities
        after each character, ``(time, vocab)`` for a text, ``(batch, time, vocab)`` for ids."""
        ids = encode_chars(text, self.vocab)[None] if isinstance(text, str) else text
        if ids.shape[-1] == 0:
            raise InputError("read needs at least one character")
        out = self.advance(self.model.inputs(ids.to(self.model.head.weight.device)))
        log_probs = F.log_softmax(self.model.head(out).float(), -1)
        return log_probs[0] if isinstance(text, str) else log_probs
