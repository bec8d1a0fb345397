"""zoo.hub's registry, models and cards; zoo.create_model; `zoo models`; and the hub's place in the
layers (it never imports zoo.tasks or zoo.cli). The shipped weights: tests/test_hub_shipped.py."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.hub_common import VOCAB, assert_refused, folder, isolated_home  # noqa: F401  (fixtures)
from zoo import create_model, list_models, load_pretrained
from zoo.hub import NoWeightsError, PretrainedError, UnknownModelError, model_entry, model_rows, models_markdown
from zoo.tasks.language_model import CharLanguageModel

REPO = Path(__file__).resolve().parents[1]


# ---- the registry --------------------------------------------------------------------------------
def test_registry_lists_and_filters() -> None:
    names = list_models()
    assert {"char_lstm_shakespeare", "imdb_bigru", "imdb_bilstm", "multi30k_de_en_attn_gru"} <= set(names)
    assert names == sorted(names)
    assert list_models("*lstm*") == [n for n in names if "lstm" in n]
    assert set(list_models(pretrained=True)) <= set(names)
    for name in list_models(pretrained=True):
        assert model_entry(name).has_weights


def test_entries_are_data() -> None:
    # the task is a dotted path and the init args plain data: the registry imports no task class
    for name in list_models():
        entry = model_entry(name)
        assert isinstance(entry.task, str) and entry.task.startswith("zoo.tasks.")
        json.dumps(dict(entry.init_args))
        with pytest.raises(TypeError):
            entry.init_args["cell"] = "rnn"  # read-only: create_model's overrides never leak into the registry
    assert model_entry("multi30k_de_en_attn_gru").init_args["num_layers"] == 1  # the shared name, not encoder_layers


def test_create_model_builds_the_config_with_overrides() -> None:
    model = create_model("char_lstm_shakespeare", vocab=VOCAB, hidden_size=32)
    assert isinstance(model, CharLanguageModel)
    assert model.hparams.cell == "lstm" and model.hparams.hidden_size == 32 and model.vocab == VOCAB
    assert model_entry("char_lstm_shakespeare").init_args["hidden_size"] == 384
    with pytest.raises(PretrainedError, match="no argument hiddn_size.*hidden_size"):
        create_model("char_lstm_shakespeare", hiddn_size=32)


def test_unknown_name_suggests_the_closest() -> None:
    for call in (
        lambda: create_model("char_lstm_shakspeare"),
        lambda: load_pretrained("char_lstm_shakspeare"),
        lambda: create_model("char_lstm_shakspeare", pretrained=True),
    ):
        with pytest.raises(UnknownModelError, match="Did you mean 'char_lstm_shakespeare'"):
            call()
    with pytest.raises(KeyError):  # also a KeyError (and a ValueError): what the CLI catches
        create_model("imdb_lstm")


def test_registered_without_weights_says_so(monkeypatch) -> None:
    # Every shipped name has weights today, so the test registers one without (in a copy of the registry).
    from zoo.hub import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model(
        "tiny_unshipped",
        task="zoo.tasks.language_model.CharLanguageModel",
        init_args={"vocab": VOCAB, "hidden_size": 8},
        description="a name without weights",
    )
    assert model_entry("tiny_unshipped").weights == "none" and "tiny_unshipped" not in list_models(pretrained=True)
    with pytest.raises(NoWeightsError, match=r"no pretrained weights for 'tiny_unshipped'.*create_model\('tiny_unshipped'\)"):
        create_model("tiny_unshipped", pretrained=True)
    assert isinstance(create_model("tiny_unshipped"), CharLanguageModel)  # random weights are still a model


# ---- cards, docs and `zoo models` ----------------------------------------------------------------
def test_docs_table_is_generated_from_the_registry() -> None:
    from zoo.cli.models import BEGIN, END, pictures_beside

    page = REPO / "docs" / "pretrained.md"
    generated = page.read_text(encoding="utf-8").split(BEGIN)[1].split(END)[0]
    assert generated == models_markdown(pictures_beside(page)), (
        "docs/pretrained.md is stale: zoo models --update-docs docs/pretrained.md"
    )
    for name in pictures_beside(page):  # every picture present is shown
        assert f"![{name}](img/pretrained/{name}.png)" in generated


def test_model_rows() -> None:
    rows = {r["name"]: r for r in model_rows()}
    assert set(rows) == set(list_models())
    lm = rows["char_lstm_shakespeare"]
    assert lm["task"] == "CharLanguageModel" and lm["weights"] == "package"
    assert lm["metric"].startswith("val_loss 1.447") and lm["size"] == model_entry("char_lstm_shakespeare").card.size
    mt = rows["multi30k_de_en_attn_gru"]
    assert mt["weights"] == "package" and mt["size"] == 9_664_936 and mt["metric"].startswith("test_bleu_beam5 38.18")
    assert [r["name"] for r in model_rows("imdb_*")] == ["imdb_bigru", "imdb_bilstm"]
    # the headline of the synthetic-data models: what their held-out test measures
    assert rows["shapes_caption_soft"]["metric"] == "test_exact 0.991" and rows["shapes_caption_soft"]["task"] == "ImageCaptioner"
    assert rows["moving_shapes_gru"]["metric"] == "test_memory_acc 0.9974" and rows["moving_shapes_gru"]["size"] == 100_592


def test_zoo_models_lists_prints_markdown_and_updates_docs(tmp_path: Path, capsys) -> None:
    from zoo.cli.models import BEGIN, END, main

    assert main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "task", "metric", "size", "weights"]
    assert any(line.startswith("imdb_bigru") and "test_acc 0.8975" in line and "3.5 MiB" in line for line in out)
    assert main(["*imdb*", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == ["imdb_bigru", "imdb_bilstm"] and rows[0]["weights"] == "package"
    assert main(["--markdown"]) == 0
    assert capsys.readouterr().out == models_markdown()
    doc = tmp_path / "page.md"
    doc.write_text(f"intro\n{BEGIN}stale\n{END}\noutro\n", encoding="utf-8")
    assert main(["--update-docs", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == f"intro\n{BEGIN}{models_markdown()}{END}\noutro\n"
    (tmp_path / "bare.md").write_text("no markers\n")
    assert_refused(main, ["--update-docs", str(tmp_path / "bare.md")], "bare.md: markers", capsys)
    assert_refused(main, ["--evaluate", "char_lstm_shakespeare"], "give --corpus FILE", capsys)  # its scorer's data
    assert_refused(main, ["--evaluate", "imdb_bigru", "--corpus", "x.txt"], "score_imdb takes no corpus", capsys)
    with pytest.raises(SystemExit):
        main(["--evaluate", "imdb_bigru", "--corpus", "x.txt", "--imdb", "y.tar.gz"])  # two data sets
    with pytest.raises(SystemExit):
        main(["--limit", "3"])  # a scorer's option without --evaluate


def test_zoo_models_evaluates_a_folder(folder: Path, tiny_corpus: Path, capsys) -> None:
    from datamodules.char_corpus import CharCorpusDataModule
    from zoo.cli.models import main

    data = CharCorpusDataModule(corpus=str(tiny_corpus), max_chars=None)
    data.setup("validate")
    vocab = list(data.vocab)  # the vocabulary the scorer rebuilds from the corpus
    torch.manual_seed(0)
    lm = CharLanguageModel(vocab=vocab, embedding_dim=8, hidden_size=16)
    lm.save_pretrained(folder.parent / "lm")
    assert main(["--evaluate", str(folder.parent / "lm"), "--corpus", str(tiny_corpus), "--max_windows", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["val_bpc"] == pytest.approx(result["val_loss"] / 0.6931471805599453)
    # the tiny LM's vocabulary is not the corpus's
    assert_refused(main, ["--evaluate", str(folder), "--corpus", str(tiny_corpus)], "vocabulary", capsys)


def test_score_classifier_accuracy_and_f1() -> None:
    from zoo.metrics import score_classifier

    class Fixed:
        label_names = ["neg", "pos"]

        def predict(self, texts, batch_size=64):
            return [{"label": "pos" if "good" in t else "neg"} for t in texts]

    result = score_classifier(Fixed(), ["good", "good", "bad", "bad good"], [1, 0, 0, 1])  # predicted 1, 1, 0, 1
    assert result["test_acc"] == 0.75 and result["examples"] == 4
    assert result["test_macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)  # neg: tp 1, fn 1; pos: tp 2, fp 1


# ---- the layers ----------------------------------------------------------------------------------
def _imports(path: Path, package: str) -> list[str]:
    """Every module a file imports, at any depth (functions included), relative imports resolved,
    plus string arguments of importlib.import_module / __import__."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            found += [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return found


def test_the_hub_never_imports_tasks_or_cli() -> None:
    files = sorted((REPO / "zoo" / "hub").glob("*.py"))
    assert {f.name for f in files} >= {
        "__init__.py",
        "errors.py",
        "registry.py",
        "models.py",
        "format.py",
        "sources.py",
        "cards.py",
    }
    for path in files:
        for module in _imports(path, "zoo.hub"):
            assert not module.startswith(("zoo.tasks", "zoo.cli")) and module not in ("zoo.tasks", "zoo.cli"), (
                f"{path.name} imports {module}"
            )
        assert len(path.read_text(encoding="utf-8").splitlines()) < 450, f"{path.name} is over 450 lines"
    # and in a fresh interpreter: importing the whole hub loads no task module
    code = "import sys, zoo.hub; print(sorted(m for m in sys.modules if m.startswith(('zoo.tasks', 'zoo.cli'))))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
# ---- through the command line (needs the zoo.cli package: `python -m zoo.cli`) -------------------
def test_zoo_sample_loads_a_folder_or_says_what_is_wrong(folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *args: subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True, env=env)  # noqa: E731
    done = run("sample", str(folder), "--prime", "ab", "--length", "20", "--seed", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ab")
    done = run("sample", "char_lstm_shakspeare")
    assert done.returncode == 2 and "Did you mean 'char_lstm_shakespeare'" in done.stderr and "Traceback" not in done.stderr


def test_create_model_asks_the_registry_once(monkeypatch):
    """create_model goes tasks -> registry -> the entry's folder, once: never back through locate()."""
    import zoo.tasks.base as base

    asked = []
    monkeypatch.setattr(base, "model_entry", lambda name, real=base.model_entry: asked.append(name) or real(name))
    monkeypatch.setattr(base, "locate", lambda *a, **k: pytest.fail("create_model went back to the registry through locate"))
    model = base.create_model("shapes_vqa_san", pretrained=True)
    assert asked == ["shapes_vqa_san"] and type(model).__name__ == "VisualQuestionAnswerer" and not model.training
