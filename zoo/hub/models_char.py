"""The registered character language models and their cards, as data (the rest: :mod:`zoo.hub.models`).

The Shakespeare models are the same recipe with another cell family at the same parameter count
(docs/benchmarks.md, "The modern recurrences beside the classic cells"); each card states what was
measured for the weights that ship.
"""

from __future__ import annotations

from zoo.hub.registry import ModelCard, register_model

# what every Tiny Shakespeare model's card says of its task and data
SHAKESPEARE = dict(
    task="character-level language model (next character; text generation)",
    data="Tiny Shakespeare (char-rnn `input.txt`, 1,115,394 characters, sha256 86c4e6aa...)",
    split="validation: the last 10%",
    data_license="public domain text (Shakespeare's plays), compiled by A. Karpathy for char-rnn (MIT-licensed repository)",
)

CHAR_LSTM_SHAKESPEARE = ModelCard(
    **SHAKESPEARE,
    metrics={"val_loss": 1.44737, "val_bpc": 2.08811, "val_ppl": 4.25191},
    scorer=(
        "datamodules.char_corpus.score_char_lm: the recipe's CharCorpusDataModule (batch_size 64 streams, seq_len 128, "
        "val_fraction 0.1); mean cross-entropy in nats over all 111,424 predicted validation characters, "
        "hidden state carried from window to window, computed in float32 on the float16 weights loaded "
        "back to float32 (val_bpc = val_loss / ln 2, val_ppl = exp(val_loss)): val_loss is the quantity "
        "`zoo fit` logs as val/loss (progress bar, checkpoint monitor)."
    ),
    evaluate_command="zoo models --evaluate char_lstm_shakespeare --corpus ../shared/data/tinyshakespeare/input.txt",
    demo='zoo sample char_lstm_shakespeare --prime "ROMEO:" --length 300',
    recipe="recipes/char_lm_shakespeare.yaml",
    command="zoo fit --config recipes/char_lm_shakespeare.yaml --data.corpus ../shared/data/tinyshakespeare/input.txt --trainer.enable_progress_bar false",
    export_command="zoo export --ckpt checkpoints/char_lm_shakespeare/best-step=1599.ckpt --out-dir zoo/pretrained/char_lstm_shakespeare --fp16",
    params=2_006_082,
    size=4_013_164,
    dtype="float16",
    sha256="96061bdb2683d65ef567efd3d306d8628a06f514a9fe0578786925fcc263f437",
    slice_check={"corpus": "tinyshakespeare/input.txt", "limit": 2, "characters": 16384, "val_loss": 1.46712},
    notes=(
        "Trained for 13 epochs (1,599 steps, 14.4 min on 2 CPU cores, bf16-mixed autocast, seed 1234); "
        "this is the best validation checkpoint (the last one). The float32 checkpoint scores 1.44737 "
        "with the same scorer: float16 storage changes the loss by < 1e-6 nats/char."
    ),
)


register_model(
    "char_lstm_shakespeare",
    description="Two-layer LSTM (384 units each, 128-d character embedding) over Tiny Shakespeare's 65 characters.",
    task="zoo.tasks.language_model.CharLanguageModel",
    init_args=dict(
        cell="lstm",
        embedding_dim=128,
        hidden_size=384,
        num_layers=2,
        dropout=0.2,
        lr=0.003,
        weight_decay=0.05,
        warmup_steps=50,
        min_lr_ratio=0.05,
        grad_clip=1.0,
    ),
    card=CHAR_LSTM_SHAKESPEARE,
)


CHAR_LSTM_PYTHON = ModelCard(
    task="character-level language model of Python source (next character; text generation; the indentation unit)",
    data="python-stdlib: this Python's (3.11) standard-library .py files, the recipe's first 1,500,000 characters",
    split="validation: the last 10% of those characters (149,888 predicted), never trained on",
    metrics={"val_loss": 1.25573, "val_bpc": 1.81163},
    scorer=(
        "datamodules.char_corpus.score_char_lm: the recipe's CharCorpusDataModule (corpus python-stdlib, max_chars "
        "1,500,000, batch_size 64 streams, seq_len 128, val_fraction 0.1); mean cross-entropy in nats over every "
        "predicted validation character, hidden state carried from window to window, on the float16 weights "
        "loaded back to float32: the quantity `zoo fit` logs as val/loss (progress bar, checkpoint monitor). "
        "The corpus is read from the running Python's own library: another Python "
        "version gives another text (the number holds for 3.11)."
    ),
    evaluate_command="zoo models --evaluate char_lstm_python --corpus python-stdlib --max_chars 1500000",
    demo='zoo sample char_lstm_python --prime "def "',
    recipe="recipes/char_lm.yaml",
    command="zoo fit --config recipes/char_lm.yaml --trainer.enable_progress_bar false",
    export_command="zoo export --ckpt checkpoints/char_lm/best-step=659.ckpt --out-dir zoo/pretrained/char_lstm_python --fp16",
    params=1_376_993,
    size=2_754_618,
    dtype="float16",
    data_license="Python Software Foundation License (the standard library's source)",
    sha256="d9b3372abc6f555b26710826cc608dc495120087d8efd0500d0c20763e4fe502",
    slice_check={
        "corpus": "python-stdlib",
        "max_chars": 1500000,
        "python": "3.11",
        "limit": 2,
        "characters": 16384,
        "val_loss": 1.3222101926803589,
    },
    notes=(
        "Trained with the recipe unchanged: 4 epochs, 659 steps, 16 min on one thread of 2 shared CPU cores "
        "(2026-12-02, AMD EPYC); the best validation checkpoint is the last. float32 scores 1.25572, float16 "
        "1.25573. Its LSTM cell #70 is an indentation unit: r = -0.902 with 'inside the leading whitespace' on "
        "held-out library source (`python -m experiments.units`, docs/experiments.md)."
    ),
)


register_model(
    "char_lstm_python",
    description="One-layer LSTM (512 units, 128-d character embedding) over Python source (the README's main job).",
    task="zoo.tasks.language_model.CharLanguageModel",
    init_args=dict(
        cell="lstm",
        embedding_dim=128,
        hidden_size=512,
        num_layers=1,
        dropout=0.1,
        lr=0.003,
        warmup_steps=50,
        grad_clip=1.0,
    ),
    card=CHAR_LSTM_PYTHON,
)


CHAR_SLSTM_SHAKESPEARE = ModelCard(
    **SHAKESPEARE,
    metrics={"val_loss": 1.56815, "val_bpc": 2.26237, "val_ppl": 4.79778},
    scorer=(
        "datamodules.char_corpus.score_char_lm, as for char_lstm_shakespeare: mean cross-entropy in nats over all "
        "111,424 predicted validation characters, the state carried from window to window, in float32 on the "
        "float16 weights loaded back to float32; the quantity `zoo fit` logs as val/loss."
    ),
    evaluate_command="zoo models --evaluate char_slstm_shakespeare --corpus ../shared/data/tinyshakespeare/input.txt",
    demo='zoo sample char_slstm_shakespeare --prime "ROMEO:" --length 300',
    recipe="recipes/char_lm_shakespeare_slstm.yaml",
    command=(
        "zoo fit --config recipes/char_lm_shakespeare_slstm.yaml --data.corpus ../shared/data/tinyshakespeare/input.txt "
        "--trainer.enable_progress_bar false"
    ),
    export_command=(
        "zoo export --ckpt checkpoints/char_lm_shakespeare_slstm/best-step=630.ckpt "
        "--out-dir zoo/pretrained/char_slstm_shakespeare --fp16"
    ),
    params=1_968_066,
    size=3_936_948,
    dtype="float16",
    sha256="58e63ce64644eef53d3a3b82e39df243d684f49d00266f05cab0b01c28a94f61",
    slice_check={"corpus": "tinyshakespeare/input.txt", "limit": 2, "characters": 16384, "val_loss": 1.57912},
    notes=(
        "The best of the modern families at the LSTM recipe's size and time (docs/benchmarks.md, \"The modern "
        'recurrences beside the classic cells"): 15 minutes of `zoo fit` on one core of an AMD EPYC (630 steps, '
        "6 epochs, bf16-mixed autocast, seed 1234), the best validation checkpoint (the last one). It trails the "
        "GRU (1.4435) and the LSTM (1.4595) of the same table: an sLSTM step costs about twice an nn.LSTM's on "
        "this CPU (its exponential gates and normaliser run as PyTorch operations, not a fused kernel), so it "
        "took 630 steps where the LSTM took 1,361."
    ),
)


register_model(
    "char_slstm_shakespeare",
    description="Two-layer sLSTM (xLSTM's scalar-memory cell, 576 units in 9 heads of 64, 128-d character embedding) over Tiny Shakespeare's 65 characters.",
    task="zoo.tasks.language_model.CharLanguageModel",
    init_args=dict(
        cell="slstm",
        embedding_dim=128,
        hidden_size=576,
        num_layers=2,
        dropout=0.2,
        lr=0.003,
        weight_decay=0.05,
        warmup_steps=50,
        min_lr_ratio=0.05,
        grad_clip=1.0,
    ),
    card=CHAR_SLSTM_SHAKESPEARE,
)
