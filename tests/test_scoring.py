"""zoo.scoring: one scorer per task, chosen by the task class, reading the right data and options."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fixtures import LEXICON, fixture_files, write_files
from tests.hub_common import tiny_lm
from zoo.scoring import SCORERS, score, score_language_model, score_translator, scorer_for


class WordForWord:
    """A translator that knows the fixture's lexicon: every sentence translated exactly as referenced."""

    hparams = SimpleNamespace(bleu_tokenize="13a")

    def __init__(self) -> None:
        self.beams: list = []

    def predict(self, sentences, beam_size=None, batch_size=64):
        self.beams.append(beam_size)
        table = dict(LEXICON)
        return [{"translation": " ".join(table.get(w.rstrip(".!?"), w) + w[len(w.rstrip(".!?")):] for w in s.split())}
                for s in sentences]


def test_translator_reads_the_split_and_scores_each_beam(tmp_path: Path) -> None:
    root = write_files(tmp_path / "multi30k", fixture_files())
    model = WordForWord()
    result = score_translator(model, str(root), split="val", limit=7)
    assert result == {"val_bleu_greedy": pytest.approx(100.0), "val_bleu_beam5": pytest.approx(100.0), "sentences": 7}
    assert model.beams == [1, 5]
    test = score_translator(model, str(root))  # default: test_2016_flickr, every sentence
    assert set(test) == {"test_bleu_greedy", "test_bleu_beam5", "sentences"} and test["sentences"] == 12

    class Shifted(WordForWord):  # the translations of the wrong sentences score far lower
        def predict(self, sentences, beam_size=None, batch_size=64):
            out = super().predict(sentences, beam_size, batch_size)
            return out[1:] + out[:1]

    assert score_translator(Shifted(), str(root), split="val")["val_bleu_greedy"] < 50
    with pytest.raises(FileNotFoundError, match=r"no dev\.de\[\.gz\] or dev\.en\[\.gz\].*--split val"):
        score_translator(model, str(root), split="dev")
    with pytest.raises(ValueError, match="give --multi30k DIR"):
        score_translator(model, None)


def test_scorer_follows_the_task_class(tiny_corpus: Path) -> None:
    lm = tiny_lm()
    assert scorer_for(lm) is score_language_model
    assert set(SCORERS) == {
        "zoo.tasks.language_model.CharLanguageModel", "zoo.tasks.classifier.SequenceClassifier",
        "zoo.tasks.seq2seq.Seq2Seq", "zoo.tasks.captioner.ImageCaptioner", "zoo.tasks.frame_classifier.FrameClassifier",
        "zoo.tasks.vqa.VisualQuestionAnswerer",
    }
    with pytest.raises(ValueError, match="no scorer for a SimpleNamespace"):
        scorer_for(SimpleNamespace())
    with pytest.raises(ValueError, match="score_language_model takes no imdb"):
        score(lm, corpus=str(tiny_corpus), imdb="x.tar.gz")
    with pytest.raises(ValueError, match="give --corpus"):
        score(lm, corpus=None, imdb=None)  # None = not given
