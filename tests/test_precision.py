"""``precision: auto``: the choice is one of the candidates, made by timing, logged with its timings,
leaves the model and the random state as they were; unknown precisions are clear errors."""

from __future__ import annotations

import logging
import random

import pytest
import torch

from datamodules.char_corpus import CharCorpusDataModule
from zoo.cli.fit import Trainer
from zoo.precision import choose_precision
from zoo.tasks.language_model import CharLanguageModel


@pytest.fixture()
def tiny(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 40, encoding="utf-8")
    model = CharLanguageModel(cell="lstm", embedding_dim=8, hidden_size=16, num_layers=1)
    return model, CharCorpusDataModule(corpus=str(corpus), batch_size=4, seq_len=16, max_chars=None)


def test_auto_picks_the_fastest_candidate_and_logs_both_timings(tiny, caplog, capsys) -> None:
    model, data = tiny
    torch.manual_seed(7)
    random.seed(7)
    expected = (torch.rand(3), random.random())
    torch.manual_seed(7)
    random.seed(7)
    with caplog.at_level(logging.INFO, logger="zoo.precision"):
        choice, timings = choose_precision(model, data, candidates=("32-true", "bf16-mixed"), steps=2, warmup=1)
    assert set(timings) == {"32-true", "bf16-mixed"} and all(s > 0 for s in timings.values())
    assert choice == min(timings, key=timings.get)
    for line in (caplog.text, capsys.readouterr().out):
        assert f"precision auto: {choice}" in line and "32-true" in line and "bf16-mixed" in line
    assert not model.built  # a copy was built and trained, not the model
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]  # the run starts as without auto


def test_unknown_precision_is_a_clear_error(tiny) -> None:
    model, data = tiny
    with pytest.raises(ValueError, match="precision 'bf17-mixed' cannot be timed: expected one of 32-true"):
        choose_precision(model, data, candidates=("32-true", "bf17-mixed"))
    with pytest.raises(ValueError, match="resolved by the zoo command"):
        Trainer(precision="auto")
