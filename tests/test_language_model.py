"""CharLanguageModel: truncated BPTT carries the state, generation, one-hot input, checkpoints."""

import itertools
import math

import lightning as L
import pytest
import torch

from datamodules.char_corpus import CharCorpusDataModule
from zoo.sequences import hidden_of
from zoo.tasks.base import load_task
from zoo.tasks.language_model import CharLanguageModel

VOCAB = ["<unk>"] + list("abcdefgh \n")


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_truncated_bptt_carries_the_state_across_batches(cell):
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, cell=cell, hidden_size=16, embedding_dim=8).eval()
    ids = torch.randint(1, len(VOCAB), (3, 31))
    batches = [{"ids": ids[:, i : i + 10], "targets": ids[:, i + 1 : i + 11]} for i in range(0, 30, 10)]
    logits_parts = []
    for batch in batches:
        _, logits = model._step(batch, "train")
        logits_parts.append(logits)
        carried = model._carry["train"]
        for s in carried if isinstance(carried, tuple) else (carried,):
            assert s.grad_fn is None  # gradients stop at the batch boundary
    whole_logits, whole_state = model(ids[:, :30])
    torch.testing.assert_close(torch.cat(logits_parts, 1), whole_logits, atol=1e-5, rtol=0)
    model.on_train_epoch_start()
    assert model._carry["train"] is None  # a new epoch starts from zeros


def test_gradient_flows_back_only_within_a_window():
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, cell="gru", hidden_size=8, embedding_dim=4)
    ids = torch.randint(1, len(VOCAB), (2, 21))
    model._step({"ids": ids[:, :10], "targets": ids[:, 1:11]}, "train")
    embedded = model.embed.weight
    loss, _ = model._step({"ids": ids[:, 10:20], "targets": ids[:, 11:21]}, "train")
    (grad,) = torch.autograd.grad(loss, embedded)
    used_before_only = set(ids[:, :10].flatten().tolist()) - set(ids[:, 10:20].flatten().tolist())
    assert used_before_only, "the seed must give tokens seen only in the first window, or the loop checks nothing"
    for token in used_before_only:  # tokens seen only in the previous window get no gradient
        assert grad[token].abs().sum() == 0


def test_one_hot_input():
    model = CharLanguageModel(vocab=VOCAB, embedding_dim=None, hidden_size=8)
    assert model.embed is None and model.rnn.layers[0].input_size == len(VOCAB)
    logits, _ = model(torch.tensor([[1, 2, 3]]))
    assert logits.shape == (1, 3, len(VOCAB))


def test_generate_is_reproducible_and_greedy_equals_top1():
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, hidden_size=16)
    a = model.generate("ab", 40, temperature=1.0, seed=3)
    b = model.generate("ab", 40, temperature=1.0, seed=3)
    assert a == b and a.startswith("ab") and len(a) == 42
    assert "\ufffd" not in a  # never emits the unknown symbol
    assert model.generate("ab", 20, temperature=0) == model.generate("ab", 20, temperature=1.0, top_k=1, seed=9)
    with pytest.raises(ValueError, match="prime"):
        model.generate("", 5)


def test_vocab_lands_in_the_checkpoint_and_rebuilds_the_model(tiny_corpus, tmp_path):
    dm = CharCorpusDataModule(str(tiny_corpus), batch_size=4, seq_len=16, max_chars=None)
    model = CharLanguageModel(hidden_size=16, embedding_dim=8)  # vocab comes from the data at setup
    trainer = L.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        limit_val_batches=2,
    )
    trainer.fit(model, dm)
    # val/ppl is exp(mean nats per character over the whole split), the state carried from window to
    # window of each stream as in validation itself: by hand here
    metrics = trainer.validate(model, dm, verbose=False)[0]
    nll, count, state = 0.0, 0, None
    model.eval()
    with torch.no_grad():
        for batch in itertools.islice(dm.val_dataloader(), 2):  # the trainer's limit_val_batches
            state = state if state is None or hidden_of(state).shape[1] == batch["ids"].shape[0] else None
            logits, state = model(batch["ids"], state)
            nll += float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), reduction="sum"))
            count += batch["targets"].numel()
    assert metrics["val/ppl"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert metrics["val/ppl"] == pytest.approx(math.exp(metrics["val/loss"]), rel=1e-4)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_task(path)
    assert isinstance(loaded, CharLanguageModel) and loaded.vocab == dm.vocab
    ids = torch.randint(1, len(dm.vocab), (2, 12))
    torch.testing.assert_close(loaded(ids)[0], model.eval()(ids)[0])


def test_vocab_mismatch_is_a_clear_error(tiny_corpus, tmp_path):
    dm = CharCorpusDataModule(str(tiny_corpus), batch_size=4, seq_len=16, max_chars=None)
    model = CharLanguageModel(vocab=VOCAB, hidden_size=8)
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="vocab differs from the datamodule"):
        trainer.fit(model, dm)


def test_predict_on_primes_and_predict_step_on_the_corpus(tiny_corpus, tmp_path):
    """predict continues raw primes and scores them; zoo predict scores the corpus' windows with the
    state carried, and its JSON lines hold the same keys."""
    import json

    from zoo.callbacks import PredictionWriter

    torch.manual_seed(0)
    dm = CharCorpusDataModule(str(tiny_corpus), batch_size=2, seq_len=8, max_chars=None)
    model = CharLanguageModel(hidden_size=8, embedding_dim=4)
    with pytest.raises(RuntimeError, match="not built yet: vocab"):
        model.predict("The")
    dm.setup()
    model = CharLanguageModel(vocab=dm.vocab, hidden_size=8, embedding_dim=4)
    out = model.predict(["The qu", "a"], length=5, temperature=0, seed=0)
    assert [r["prime"] for r in out] == ["The qu", "a"]
    assert out[0]["text"].startswith("The qu") and len(out[0]["text"]) == 11
    assert out[0]["nll"] > 0 and out[1]["nll"] is None  # one character: nothing to score
    assert model.predict("The qu", length=5, temperature=0)[0] == out[0]

    writer = PredictionWriter(str(tmp_path / "lm.jsonl"))
    trainer = L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[writer],
        limit_predict_batches=3,
        default_root_dir=tmp_path,
    )
    trainer.predict(model, dm, return_predictions=False)
    lines = [json.loads(x) for x in (tmp_path / "lm.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3 * 2 and [x["window"] for x in lines[:4]] == [0, 0, 1, 1]
    assert {"prime", "text", "nll", "stream", "window"} == set(lines[0]) and lines[0]["nll"] > 0
    # the first window of stream 0 is the start of the corpus' validation part
    assert len(lines[0]["text"]) == 8


# ---- the sampling rule: no sample is a run of whitespace ----------------------------------------------
def _space_lover() -> CharLanguageModel:
    """A model whose every next character is a space with p = 0.997 (and a newline 0.001)."""
    model = CharLanguageModel(vocab=VOCAB, hidden_size=8, embedding_dim=4)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[VOCAB.index(" ")] = 8.0
        model.head.bias[VOCAB.index("\n")] = 1.0
    return model


def _longest_whitespace(text: str) -> int:
    import re

    return max((len(m) for m in re.findall(r"\s+", text)), default=0)


def test_a_model_that_prefers_spaces_still_gives_a_readable_sample():
    model = _space_lover()
    free = model.generate("ab ", 300, temperature=0.6, seed=0, max_whitespace=None)
    assert sum(c.isspace() for c in free[3:]) >= 0.99 * 300  # unbounded, the sample is a run of spaces
    bounded = model.generate("ab ", 300, temperature=0.6, seed=0)  # the default bound, 32
    assert len(bounded) == 303 and bounded[:3] == "ab "
    assert _longest_whitespace(bounded) == 32  # the prime's trailing space counts towards the first run
    assert sum(not c.isspace() for c in bounded[3:]) >= 300 // 33  # a visible character at least every 33
    words = model.generate("ab ", 300, temperature=0.6, seed=0, max_whitespace=1)
    assert _longest_whitespace(words) == 1 and sum(not c.isspace() for c in words) >= 150  # words, one space apart
    # greedy: four spaces, then the likeliest visible character (all tie: the first, "a"), and again
    assert model.generate("ab", 40, temperature=0, max_whitespace=4) == "ab" + "    a" * 8


def test_the_whitespace_bound_changes_no_sample_that_stays_under_it():
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, hidden_size=16)
    free = model.generate("ab", 200, temperature=1.0, seed=5, max_whitespace=None)
    assert _longest_whitespace(free) < 32
    assert model.generate("ab", 200, temperature=1.0, seed=5) == free  # conditioning only acts at the bound
    with pytest.raises(ValueError, match="max_whitespace must be >= 1"):
        model.generate("ab", 5, max_whitespace=0)


def test_the_logged_val_loss_is_the_model_cards_measure(tiny_corpus):
    """``zoo fit``'s val/loss (progress bar, checkpoint monitor) and score_char_lm's val_loss (the
    pretrained cards' number) are one quantity: nats per predicted validation character, the state
    carried. The last window is shorter, so a mean over windows instead of characters would differ."""
    from datamodules.char_corpus import score_char_lm

    torch.manual_seed(0)
    dm = CharCorpusDataModule(str(tiny_corpus), batch_size=4, seq_len=16, max_chars=None)
    dm.setup()
    assert (dm.val_streams.shape[1] - 1) % 16, "the corpus must end in a ragged window, or weighting goes untested"
    model = CharLanguageModel(vocab=dm.vocab, hidden_size=16, embedding_dim=8)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    logged = trainer.validate(model, dm, verbose=False)[0]["val/loss"]
    card = score_char_lm(model, str(tiny_corpus), batch_size=4, seq_len=16, max_chars=None)
    assert logged == pytest.approx(card["val_loss"], abs=1e-5)
    assert card["characters"] == dm.val_streams.numel() - dm.val_streams.shape[0]
