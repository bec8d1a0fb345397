"""zoo.scoring: each task declares how it is scored (a scorer by name, or its own score on any datamodule
of its kind); the scorers read the right data and options; `zoo models --evaluate --ckpt` scores a model
trained with any recipe on its own data."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fixtures import LEXICON, ag_rows, fixture_files, write_ag_news, write_csv, write_files
from tests.hub_common import tiny_lm
from zoo.scoring import score, score_imdb, score_language_model, score_translator, scorer_for


class WordForWord:
    """A translator that knows the fixture's lexicon: every sentence translated exactly as referenced."""

    hparams = SimpleNamespace(bleu_tokenize="13a")

    def __init__(self) -> None:
        self.beams: list = []

    def predict(self, sentences, beam_size=None, batch_size=64):
        self.beams.append(beam_size)
        table = dict(LEXICON)
        return [
            {"translation": " ".join(table.get(w.rstrip(".!?"), w) + w[len(w.rstrip(".!?")) :] for w in s.split())}
            for s in sentences
        ]


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


def test_the_task_declares_its_scorer(tiny_corpus: Path) -> None:
    from zoo.tasks.classifier import SequenceClassifier

    lm = tiny_lm()
    assert scorer_for(lm) is score_language_model and type(lm).scorer == "score_language_model"
    assert SequenceClassifier.scorer == "score_imdb" and scorer_for(SequenceClassifier()) is score_imdb

    class Unscored(SequenceClassifier):  # a task naming no scorer is scored on a datamodule only
        scorer = None

    with pytest.raises(ValueError, match="a Unscored names no scorer: score it on a datamodule"):
        scorer_for(Unscored())

    class Misnamed(SequenceClassifier):  # a name that is not a scorer of zoo.scoring is refused, never looked up
        scorer = "checkpoint_datamodule"

    with pytest.raises(ValueError, match="'checkpoint_datamodule' is not a scorer of zoo.scoring"):
        scorer_for(Misnamed())
    with pytest.raises(ValueError, match="score_language_model takes no imdb"):
        score(lm, corpus=str(tiny_corpus), imdb="x.tar.gz")
    with pytest.raises(ValueError, match="give --corpus"):
        score(lm, corpus=None, imdb=None)  # None = not given


def trained_classifier(data, steps: int = 3):
    """A SequenceClassifier fit for a few steps on ``data`` (one CPU process, no logger)."""
    import lightning as L

    from zoo.tasks.classifier import SequenceClassifier

    model = SequenceClassifier(cell="gru", embedding_dim=8, hidden_size=8, pool="attention")
    L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        accelerator="cpu",
    ).fit(model, datamodule=data)
    return model.eval()


def test_any_classifier_is_scored_on_any_classification_datamodule(tmp_path: Path) -> None:
    """An AG News classifier on the AG News test split: predict on its raw test texts, per-label limits."""
    from datamodules.ag_news import AGNewsDataModule, join
    from zoo.metrics import score_classifier

    data = AGNewsDataModule(
        root=str(write_ag_news(tmp_path / "ag")), cache_dir=str(tmp_path / "cache"), batch_size=4, min_frequency=1
    )
    model = trained_classifier(data)
    texts, labels = data.test_examples()
    assert len(texts) == 12 and sorted(set(labels)) == [0, 1, 2, 3]
    assert (texts, labels) == ([join(t, d) for _, t, d in ag_rows(3, seed=1)], [int(c) - 1 for c, _, _ in ag_rows(3, seed=1)])
    result = score(model, data)
    assert result == score_classifier(model, texts, labels) and result["examples"] == 12
    assert score(model, data, limit=1)["examples"] == 4  # the first text of each label
    with pytest.raises(ValueError, match="scoring on a datamodule takes only limit, not imdb"):
        score(model, data, imdb="x.tar.gz")
    with pytest.raises(ValueError, match="scored on a classification datamodule.*SimpleNamespace is none"):
        model.score(SimpleNamespace(test_dataloader=list))


def test_a_checkpoint_brings_back_its_datamodule(tmp_path: Path) -> None:
    """LightningCLI records the datamodule's class and arguments; a class outside datamodules. is refused."""
    import torch

    from zoo.hub.errors import TaskNameError
    from zoo.scoring import checkpoint_datamodule

    root = write_csv(tmp_path / "slice.csv", ag_rows(10))
    path = tmp_path / "x.ckpt"
    torch.save(
        {
            "datamodule_hyper_parameters": {
                "_class_path": "datamodules.ag_news.AGNewsDataModule",
                "root": str(root),
                "min_frequency": 1,
                "_instantiator": "lightning.pytorch.cli.instantiate_module",
            }
        },
        path,
    )
    data = checkpoint_datamodule(path)
    assert type(data).__name__ == "AGNewsDataModule" and data.hparams.root == str(root)
    torch.save({"datamodule_hyper_parameters": {"_class_path": "os.system", "command": "true"}}, path)
    with pytest.raises(
        TaskNameError, match=r"x\.ckpt \(its datamodule\): refusing task 'os.system': it is not under datamodules\."
    ):
        checkpoint_datamodule(path)
    torch.save({"state_dict": {}}, path)
    assert checkpoint_datamodule(path) is None  # recorded none: the task's scorer and data options then


@pytest.mark.slow
def test_zoo_models_evaluate_ckpt_of_the_agnews_recipe(tmp_path: Path) -> None:
    """`zoo fit --config recipes/agnews_gru.yaml` for a few steps, then `zoo models --evaluate --ckpt`, as a user types them."""
    from tests.conftest import REPO
    from tests.test_cli import zoo

    root = write_csv(tmp_path / "slice.csv", ag_rows(10))
    fit = zoo(
        "fit",
        "--config",
        str(REPO / "recipes" / "agnews_gru.yaml"),
        "--data.root",
        str(root),
        "--data.min_frequency",
        "1",
        "--data.val_fraction",
        "0.25",
        "--data.cache_dir",
        str(tmp_path / "cache"),
        "--trainer.max_steps",
        "2",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    run = zoo("models", "--evaluate", "--ckpt", "checkpoints/agnews_gru/last.ckpt", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    result = json.loads(run.stdout)
    assert set(result) == {"test_acc", "test_macro_f1", "examples"} and result["examples"] == 8  # 20% of each label's 10
    missing = zoo("models", "--evaluate", cwd=tmp_path)
    assert missing.returncode == 2 and "--evaluate takes a registered name or folder, or --ckpt PATH" in missing.stderr
