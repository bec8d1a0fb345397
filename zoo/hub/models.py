"""The registered models and their cards, as data.

Each registration is the configuration (the task class by its dotted path and the recipe's model
section as init args); its card, beside it, is what was measured for the weights that ship. Cards
of models without weights say how to train them. Refresh docs/pretrained.md with
``zoo models --update-docs docs/pretrained.md``.
"""

from __future__ import annotations

from zoo.hub.registry import ModelCard, register_model

CHAR_LSTM_SHAKESPEARE = ModelCard(
    task="character-level language model (next character; text generation)",
    data="Tiny Shakespeare (char-rnn `input.txt`, 1,115,394 characters, sha256 86c4e6aa...)",
    split="validation: the last 10%",
    metrics={"val_loss": 1.44737, "val_bpc": 2.08811, "val_ppl": 4.25191},
    scorer=(
        "datamodules.char_corpus.score_char_lm: the recipe's CharCorpusDataModule (batch_size 64 streams, seq_len 128, "
        "val_fraction 0.1); mean cross-entropy in nats over all 111,424 predicted validation characters, "
        "hidden state carried from window to window, computed in float32 on the float16 weights loaded "
        "back to float32 (val_bpc = val_loss / ln 2, val_ppl = exp(val_loss)). "
        "Command: `zoo models --evaluate char_lstm_shakespeare --corpus ../shared/data/tinyshakespeare/input.txt`"
    ),
    recipe="recipes/char_lm_shakespeare.yaml",
    command="zoo fit --config recipes/char_lm_shakespeare.yaml --data.corpus ../shared/data/tinyshakespeare/input.txt --trainer.enable_progress_bar false",
    export_command="zoo export --ckpt checkpoints/char_lm_shakespeare/best-step=1599.ckpt --out zoo/pretrained/char_lstm_shakespeare --fp16",
    params=2_006_082,
    size=4_013_164,
    dtype="float16",
    data_license="public domain text (Shakespeare's plays), compiled by A. Karpathy for char-rnn (MIT-licensed repository)",
    sha256="96061bdb2683d65ef567efd3d306d8628a06f514a9fe0578786925fcc263f437",
    slice_check={"max_windows": 2, "characters": 16384, "val_loss": 1.46712},
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
        cell="lstm", embedding_dim=128, hidden_size=384, num_layers=2, dropout=0.2,
        lr=0.003, weight_decay=0.05, warmup_steps=50, min_lr_ratio=0.05, grad_clip=1.0,
    ),
    card=CHAR_LSTM_SHAKESPEARE,
)


IMDB_LICENSE = ("IMDB reviews as released by Maas et al. (2011), ACL, for research; no explicit licence: "
                "non-commercial research and education use")
IMDB_DATA = "IMDB Large Movie Review Dataset (Maas et al., 2011), aclImdb"
IMDB_SCORER = (
    "zoo.metrics.score_classifier: every raw test review through the model's own tokenizer and head_tail "
    "truncation to 400 tokens (model.predict, exactly what `zoo classify` does); accuracy of the most "
    "probable label, on the stored weights loaded back to float32."
)

IMDB_BIGRU = ModelCard(
    task="binary sentiment classification of movie reviews (neg / pos)",
    data=IMDB_DATA,
    split="test: 2,000 reviews of aclImdb_dev, ids 0-999 of each label",
    metrics={"test_acc": 0.8975},
    scorer=IMDB_SCORER + (" The float32 checkpoint scores 0.8980 with `zoo test --config recipes/imdb_gru.yaml` "
                          "(IMDBDataModule's test loader): storage moved one review of 2,000. "
                          "Command: `zoo models --evaluate imdb_bigru --imdb ../shared/data/imdb/aclImdb_dev.tar.gz`"),
    recipe="recipes/imdb_gru.yaml",
    command="zoo fit --config recipes/imdb_gru.yaml --data.root ../shared/data/imdb/aclImdb_dev.tar.gz --trainer.enable_progress_bar false",
    export_command="zoo export --ckpt checkpoints/imdb_gru/best-step=880.ckpt --out zoo/pretrained/imdb_bigru --fp16 --int8 embeddings",
    params=3_399_682,
    size=3_650_460,
    dtype="float16 + int8 embedding rows",
    data_license=IMDB_LICENSE,
    sha256="78bfa40d12338cb770c8bf1739d827c6f2a403e456f9a0dce7e0a47631bd0351",
    slice_check={"per_label": 100, "reviews": 200, "test_acc": 0.89},
    notes=(
        "Trained on aclImdb_dev's 25,000 training reviews (22,500 train, 2,500 validation: stratified, seed 0) "
        "for 3 epochs (1,056 steps, 25.6 min on 2 CPU cores); this is the best validation checkpoint (0.8976, "
        "step 880 of 1,056). Word-level tokenizer, 25,000 tokens, trained on the training reviews; concat "
        "pooling (last state + max + mean). The 25,000 x 128 embedding table (3.2M of the 3.4M parameters) "
        "is stored as int8 rows: in float16 the folder would be 7.8 MB, over the 5 MB budget for weights "
        "inside the package."
    ),
)


register_model(
    "imdb_bigru",
    description="Bidirectional GRU (128 units a direction) over word tokens with concat pooling, for IMDB review sentiment.",
    task="zoo.tasks.classifier.SequenceClassifier",
    init_args=dict(
        cell="gru", embedding_dim=128, hidden_size=128, num_layers=1, bidirectional=True, pool="last+max+mean",
        dropout=0.3, embedding_dropout=0.2, lr=0.002, weight_decay=0.01, warmup_steps=50, min_lr_ratio=0.05,
        grad_clip=1.0,
    ),
    card=IMDB_BIGRU,
)


IMDB_BILSTM = ModelCard(
    task="binary sentiment classification of movie reviews (neg / pos)",
    data=IMDB_DATA,
    split="test: 2,000 reviews of aclImdb_dev, ids 0-999 of each label",
    metrics={"test_acc": 0.874},
    scorer=IMDB_SCORER + (" The float32 checkpoint scores 0.8740 with `zoo test --config recipes/imdb_lstm.yaml` "
                          "(IMDBDataModule's test loader). "
                          "Command: `zoo models --evaluate imdb_bilstm --imdb ../shared/data/imdb/aclImdb_dev.tar.gz`"),
    recipe="recipes/imdb_lstm.yaml",
    command="zoo fit --config recipes/imdb_lstm.yaml --data.root ../shared/data/imdb/aclImdb_dev.tar.gz --trainer.enable_progress_bar false",
    export_command="zoo export --ckpt checkpoints/imdb_lstm/best-step=704.ckpt --out zoo/pretrained/imdb_bilstm --fp16 --int8 embeddings",
    params=3_464_706,
    size=3_780_508,
    dtype="float16 + int8 embedding rows",
    data_license=IMDB_LICENSE,
    sha256="3a8eabce5ce899cce195a1333de46747aa4954b7a7b34729d4193fccdaae8b37",
    slice_check={"per_label": 100, "reviews": 200, "test_acc": 0.905},
    notes=(
        "Trained on aclImdb_dev's 25,000 training reviews (22,500 train, 2,500 validation: stratified, seed 0) "
        "for 2 epochs (704 steps; 39 min wall clock on 2 CPU cores that other jobs were sharing); the best "
        "validation accuracy (0.8784) is the last step. Word-level tokenizer, 25,000 tokens, max pooling. "
        "The embedding table is stored as int8 rows (see imdb_bigru). The IMDB recipe that reaches 89% in "
        "30 minutes is the GRU one with concat pooling (docs/results.md)."
    ),
)


register_model(
    "imdb_bilstm",
    description="Bidirectional LSTM (128 units a direction) over word tokens with max pooling, for IMDB review sentiment.",
    task="zoo.tasks.classifier.SequenceClassifier",
    init_args=dict(
        cell="lstm", embedding_dim=128, hidden_size=128, num_layers=1, bidirectional=True, pool="max",
        dropout=0.3, embedding_dropout=0.2, lr=0.002, weight_decay=0.01, warmup_steps=50, min_lr_ratio=0.05,
        grad_clip=1.0,
    ),
    card=IMDB_BILSTM,
)


MULTI30K_DE_EN_ATTN_GRU = ModelCard(
    task="German -> English translation of image descriptions",
    data="Multi30k task 1 (de-en): 29,000 train, 1,014 val, 1,000 test_2016_flickr sentence pairs",
    split="test_2016_flickr (1,000 sentences)",
    metrics={"test_bleu_beam5": 37.06, "test_bleu_greedy": 35.76},
    scorer=("benchmarks/translate_bleu.py: every raw test sentence through model.translate (what `zoo translate` "
            "does), corpus sacreBLEU 2.6 on the detokenized cased output against the raw references, tokenize 13a "
            "(signature nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp); beam 5 with GNMT length penalty 1.0 (chosen on "
            "val), greedy = beam 1. Command: `python benchmarks/translate_bleu.py --ckpt CKPT --data "
            "../shared/data/multi30k --beams 1 5 --length_penalty 1.0`"),
    recipe="recipes/multi30k_attn.yaml",
    command="zoo fit --config recipes/multi30k_attn.yaml --data.root ../shared/data/multi30k --trainer.enable_progress_bar false",
    params=6_863_424,
    data_license="Multi30k (Elliott et al., 2016), built on Flickr30k image descriptions: research use",
    notes=("Trained here (15 epochs, 61 min wall clock on 2 CPU cores, about 11 of them paused for other "
           "measurements); the checkpoint kept is the best validation BLEU (11th epoch, step 4994). No weights ship: "
           "`zoo export --fp16` makes a 13.8 MB model.safetensors, over the 5 MB budget for weights inside the "
           "package, and no host for a URL or Hub repo is reachable from this machine. Train it with the command "
           "above (or publish the exported folder and set the card's `url` or `hub_repo`)."),
)


register_model(
    "multi30k_de_en_attn_gru",
    description='Bidirectional GRU encoder, GRU decoder with Luong "general" attention, German to English on Multi30k.',
    task="zoo.tasks.seq2seq.Seq2Seq",
    init_args=dict(
        cell="gru", embedding_dim=256, hidden_size=256, num_layers=1, bidirectional=True, decoder_layers=1,
        attention="general", dropout=0.3, embedding_dropout=0.1, label_smoothing=0.1, tie_embeddings=True,
        beam_size=5, length_penalty=1.0, lr=0.002, weight_decay=0.01, warmup_steps=200, min_lr_ratio=0.05,
        grad_clip=1.0,
    ),
    card=MULTI30K_DE_EN_ATTN_GRU,
)
