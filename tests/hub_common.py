"""What the hub tests share: an isolated ZOO_HOME, a tiny character LM and its outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zoo.tasks.language_model import CharLanguageModel

VOCAB = ["<unk>", "\n", " ", "a", "b", "c", "d", "e", "é"]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches under its own ZOO_HOME and never sees the user's Hugging Face config."""
    home = tmp_path / "zoo_home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


def tiny_lm(seed: int = 0) -> CharLanguageModel:
    torch.manual_seed(seed)
    return CharLanguageModel(vocab=VOCAB, embedding_dim=8, hidden_size=16, dropout=0.1).eval()


def outputs(model: CharLanguageModel) -> torch.Tensor:
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        return model(ids)[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tiny_lm().save_pretrained(tmp_path / "tiny")


def assert_refused(main, argv, match: str, capsys) -> None:
    """A command refuses with one line: exit status 2 and ``match`` in its error message."""
    import re

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err), err
