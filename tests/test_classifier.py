"""zoo/tasks/classifier.py: padding invariance for every pool and cell, raw-text predict, checkpoints."""

from __future__ import annotations

import pytest
import torch

from datamodules.loaders import pad_collate
from datamodules.text import EncodedTexts
from datamodules.tokenizers import pack, train_tokenizer
from tests.conftest import LEARNING_SEED, learned
from zoo.tasks.classifier import POOLS, SequenceClassifier

POS = ["a great film", "great acting , loved it", "wonderful and great", "loved the great plot"]
NEG = ["an awful film", "boring , awful acting", "terrible and boring", "hated the awful plot"]


@pytest.fixture(scope="module")
def tokenizer_json():
    return train_tokenizer(POS + NEG, vocab_size=100, min_frequency=1).to_str()


def model(tokenizer_json, **kw):
    torch.manual_seed(0)
    return SequenceClassifier(tokenizer_json, ["neg", "pos"], embedding_dim=8, hidden_size=6, **kw).eval()


@pytest.mark.parametrize("pool", [*POOLS, "last+max+mean"])
@pytest.mark.parametrize("cell,layers,bi", [("lstm", 2, True), ("gru", 1, False), ("rnn", 1, True)])
def test_padding_never_changes_a_prediction(tokenizer_json, pool, cell, layers, bi):
    m = model(tokenizer_json, pool=pool, cell=cell, num_layers=layers, bidirectional=bi, dropout=0.1)
    seqs = [torch.randint(4, 20, (n,), generator=torch.Generator().manual_seed(n)) for n in (5, 2, 9, 1)]
    alone = torch.cat([m(s[None], torch.tensor([len(s)])) for s in seqs])
    batch = pad_collate([{"ids": s} for s in seqs])
    together = m(batch["ids"], batch["lengths"])
    extra = torch.cat([batch["ids"], torch.randint(4, 20, (4, 7))], 1)  # junk (not even <pad>) after the end
    padded_more = m(extra, batch["lengths"])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded_more, alone, atol=1e-5, rtol=1e-5)


def test_cells_backend_agrees_with_native(tokenizer_json):
    m = model(tokenizer_json, pool="attention", cell="gru", bidirectional=True)
    batch = pad_collate([{"ids": torch.tensor(x)} for x in ([5, 6, 7], [8, 9])])
    native = m(batch["ids"], batch["lengths"])
    m.rnn.backend = "cells"
    torch.testing.assert_close(m(batch["ids"], batch["lengths"]), native, atol=1e-5, rtol=1e-5)


def test_attention_weights_ignore_padding(tokenizer_json):
    m = model(tokenizer_json, pool="attention")
    batch = pad_collate([{"ids": torch.tensor(x)} for x in ([5, 6, 7, 8], [9, 10])])
    _, weights = m(batch["ids"], batch["lengths"], return_attention=True)
    assert weights.shape == (2, 4) and (weights[1, 2:] == 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(2))


def test_unknown_pool_is_rejected():
    for bad in ("median", "max+", ""):
        with pytest.raises(ValueError, match="pool"):
            SequenceClassifier(pool=bad)


def test_predict_on_raw_strings(tokenizer_json):
    m = model(tokenizer_json, text_max_tokens=3, text_truncation="head")
    out = m.predict(["A GREAT film<br />", "", "zzz unknown words only"])
    assert len(out) == 3 and all(set(o) == {"text", "label", "probs"} for o in out)
    assert [o["text"] for o in out] == ["A GREAT film<br />", "", "zzz unknown words only"]
    assert all(o["label"] in ("neg", "pos") and abs(sum(o["probs"].values()) - 1) < 1e-5 for o in out)
    assert [len(x) for x in m.tokenize(["a b c d e f", ""])] == [3, 1]  # truncated; empty → [<unk>]


def tiny_datamodule(tokenizer_json, batch_size=4):
    import lightning as L
    from torch.utils.data import DataLoader

    tok = __import__("datamodules.tokenizers", fromlist=["load_tokenizer"]).load_tokenizer(tokenizer_json)
    texts, labels = POS * 4 + NEG * 4, [1] * 16 + [0] * 16
    flat, offsets = pack([e.ids for e in tok.encode_batch(texts)])
    ds = EncodedTexts(flat, offsets, torch.tensor(labels))

    class Tiny(L.LightningDataModule):
        def __init__(self):
            super().__init__()
            self.tokenizer_json, self.label_names, self.max_tokens, self.truncation = tokenizer_json, ["neg", "pos"], 50, "head"

        def train_dataloader(self):
            return DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=pad_collate)

        def val_dataloader(self):
            return DataLoader(ds, batch_size=8, collate_fn=pad_collate)

        test_dataloader = predict_dataloader = val_dataloader

    return Tiny()


@pytest.mark.learning
def test_fit_from_datamodule_checkpoint_rebuilds_itself(tokenizer_json, tmp_path):
    import lightning as L

    torch.manual_seed(LEARNING_SEED)
    m = SequenceClassifier(embedding_dim=16, hidden_size=16, pool="mean", lr=1e-2, warmup_steps=1, dropout=0.0)
    assert not m.built  # sizes come from the datamodule at setup
    dm = tiny_datamodule(tokenizer_json, batch_size=8)
    trainer = L.Trainer(
        max_epochs=12,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
    )
    trainer.fit(m, dm)
    assert {"train/loss", "val/loss", "val/acc", "val/f1"} <= set(trainer.callback_metrics)
    assert m.hparams.tokenizer_json == tokenizer_json and m.hparams.label_names == ["neg", "pos"]
    assert m.hparams.text_max_tokens == 50 and m.hparams.text_truncation == "head"
    (result,) = trainer.test(m, dm, verbose=False)
    accuracy = learned("classifier: accuracy on its 32 training texts", result["test/acc"])
    # seeds 0-4 x kernels {default, avx2, avx512}, AMD EPYC: 1.0 every time; 0.9 leaves 3 of 32 for another CPU
    assert accuracy >= 0.9 and result["test/f1"] >= 0.9 and "test/loss" in result
    preds = trainer.predict(m, dm)
    assert preds[0][0]["label"] == "pos" and len(preds[0]) == 8
    assert set(preds[0][0]) == {"index", "label", "probs"}  # the batch holds its index, not the text

    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = SequenceClassifier.load_from_checkpoint(tmp_path / "m.ckpt", map_location="cpu")
    texts = ["a great film , loved it", "boring and awful"]
    assert [p["label"] for p in loaded.predict(texts)] == ["pos", "neg"]
    assert loaded.predict(texts) == m.predict(texts)

    from zoo.tasks.base import load_task

    assert load_task(tmp_path / "m.ckpt").predict(texts) == m.predict(texts)


def test_model_refuses_data_with_another_vocabulary(tokenizer_json, tmp_path):
    import lightning as L

    other = train_tokenizer(["completely different words here"], vocab_size=50, min_frequency=1).to_str()
    m = SequenceClassifier(other, ["neg", "pos"], embedding_dim=4, hidden_size=4)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match="tokenizer_json differs"):
        trainer.fit(m, tiny_datamodule(tokenizer_json))
    with pytest.raises(ValueError, match="needs tokenizer_json"):
        L.Trainer(max_epochs=1, logger=False, default_root_dir=tmp_path).fit(
            SequenceClassifier(), train_dataloaders=tiny_datamodule(tokenizer_json).train_dataloader()
        )
