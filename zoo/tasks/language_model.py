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

from typing import Dict, List, Optional


import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.text import Perplexity

from datamodules.char_corpus import decode, encode
from zoo.cells import State
from zoo.decoding import sample_next
from zoo.recurrent import Recurrent
from zoo.tasks.base import TaskModule


def detach_state(state: State) -> State:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def state_batch(state: State) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]


class CharLanguageModel(TaskModule):
    def __init__(
        self,
        vocab: Optional[List[str]] = None,
        cell: str = "lstm",
        embedding_dim: Optional[int] = 128,
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = 0.0,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        grad_clip: Optional[float] = 1.0,
        backend: str = "native",
        nonlinearity: str = "tanh",
    ) -> None:
        """
        Args:
            vocab: the characters (index 0 = unknown); ``None`` = take it from the datamodule at setup.
            cell: ``rnn`` | ``gru`` | ``lstm``.
            embedding_dim: size of the learned character embedding; ``None`` or 0 = one-hot input.
            hidden_size, num_layers: width and depth of the recurrent stack.
            dropout: on the input, between layers and before the output layer.
            lr, weight_decay: AdamW; the learning rate warms up for ``warmup_steps`` and then follows
                a cosine down to ``min_lr_ratio * lr`` over the run's planned steps.
            grad_clip: clip the global gradient norm to this (``None`` = no clipping).
            backend: ``native`` (torch's fused RNNs) or ``cells`` (ours: gates inspectable).
        """
        super().__init__()
        self.save_hyperparameters()
        self._carry: Dict[str, Optional[State]] = {"train": None, "val": None}
        if vocab is not None:
            self._build(vocab)

    def _build(self, vocab: List[str]) -> None:
        hp = self.hparams
        self.vocab = list(vocab)
        V = len(self.vocab)
        self.embed = nn.Embedding(V, hp.embedding_dim) if hp.embedding_dim else None
        self.drop = nn.Dropout(hp.dropout)
        self.rnn = Recurrent(
            hp.embedding_dim or V, hp.hidden_size, hp.cell, hp.num_layers,
            dropout=hp.dropout, backend=hp.backend, nonlinearity=hp.nonlinearity,
        )
        self.head = nn.Linear(hp.hidden_size, V)
        self.val_ppl = Perplexity()

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        data_vocab = getattr(datamodule, "vocab", None)
        if self.hparams.vocab is None:
            if data_vocab is None:
                raise ValueError("CharLanguageModel needs a vocab: pass one, or train with a CharCorpusDataModule")
            self.hparams.vocab = list(data_vocab)  # lands in the checkpoint: it rebuilds itself
            self._build(data_vocab)
        elif data_vocab is not None and list(data_vocab) != self.vocab:
            raise ValueError(
                f"the model's vocabulary ({len(self.vocab)} characters) differs from the corpus's "
                f"({len(data_vocab)}): this model cannot be trained or evaluated on this corpus"
            )

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
        if state is not None and state_batch(state) != batch["ids"].shape[0]:
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

    def training_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._step(batch, "train")
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["targets"].numel())
        return loss

    def validation_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
        loss, logits = self._step(batch, "val")
        self.val_ppl.update(logits.float(), batch["targets"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["targets"].numel())
        self.log("val/ppl", self.val_ppl, prog_bar=True)

    def test_step(self, batch: Dict[str, Tensor], batch_idx: int) -> None:
        loss, _ = self._step(batch, "val")
        self.log("test/loss", loss, sync_dist=True, batch_size=batch["targets"].numel())

    def predict_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Dict[str, Tensor]:
        """Score text: the negative log-likelihood (nats) of every target character, state carried."""
        if batch_idx == 0:
            self._carry["val"] = None
        state = self._carry["val"]
        logits, state = self(batch["ids"], state)
        self._carry["val"] = detach_state(state)
        nll = F.cross_entropy(logits.transpose(1, 2), batch["targets"], reduction="none")
        return {"nll": nll, "targets": batch["targets"]}

    # ---- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prime: str = "\n",
        length: int = 500,
        temperature: float = 0.8,
        top_k: Optional[int] = None,
        seed: Optional[int] = None,
    ) -> str:
        """Prime the state with ``prime``, then sample ``length`` characters one at a time."""
        if not prime:
            raise ValueError("prime must hold at least one character")
        was_training = self.training
        self.eval()
        generator = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        ids = encode(prime, self.vocab).to(self.device)[None]
        logits, state = self(ids)
        unknown = torch.tensor([0], device=self.device)  # never emit the unknown symbol
        out = []
        for _ in range(length):
            next_id = sample_next(logits[:, -1].index_fill(-1, unknown, float("-inf")), temperature, top_k, generator)
            out.append(int(next_id))
            logits, state = self(next_id[:, None], state)
        self.train(was_training)
        return prime + decode(out, self.vocab)
