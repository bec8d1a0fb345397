"""The Tiny Shakespeare recipes compare cell families at equal size (issue 24): every
recipes/char_lm_shakespeare*.yaml builds a model whose parameter count, with the corpus's 65
characters, is within 10% of the LSTM recipe's, and differs from the LSTM recipe only in the model's
cell, width and depth (and its own run names), so that data, batch, optimiser and time are the same."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LSTM_RECIPE = REPO / "recipes" / "char_lm_shakespeare.yaml"
RECIPES = sorted((REPO / "recipes").glob("char_lm_shakespeare*.yaml"))
VOCAB = ["<unk>"] + [chr(33 + i) for i in range(64)]  # 65 characters, as Tiny Shakespeare has
LSTM_PARAMETERS = 2_005_569  # embedding 65 x 128, LSTM 2 x 384, head 384 -> 65
MAY_DIFFER = {"residual", "cell", "hidden_size", "num_layers", "lstm_init"}  # lstm_init: read by LSTMs only
STATED = re.compile(r"Parameters with the 65 characters of Tiny Shakespeare: ([\d,]+)")


def config(recipe: Path) -> dict:
    """The recipe as data, its own run names (``char_lm_shakespeare_<family>``) read as the LSTM's."""
    return yaml.safe_load(re.sub(r"char_lm_shakespeare_\w+", "char_lm_shakespeare", recipe.read_text(encoding="utf-8")))


def parameters(recipe: Path) -> int:
    model = config(recipe)["model"]
    module, _, name = model["class_path"].rpartition(".")
    task = getattr(importlib.import_module(module), name)(vocab=VOCAB, **model["init_args"])
    return sum(p.numel() for p in task.parameters())


def test_the_lstm_recipe_has_the_size_the_recipes_state():
    assert parameters(LSTM_RECIPE) == LSTM_PARAMETERS


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipe_matches_the_lstm_size_within_ten_percent(recipe):
    count = parameters(recipe)
    assert abs(count / LSTM_PARAMETERS - 1) <= 0.10, f"{recipe.name}: {count:,} parameters, the LSTM recipe {LSTM_PARAMETERS:,}"
    stated = STATED.search(recipe.read_text(encoding="utf-8"))
    if stated:  # a recipe that writes its count down writes the right one
        assert int(stated.group(1).replace(",", "")) == count, recipe.name


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipe_differs_from_the_lstm_only_in_the_model(recipe):
    ours, lstm = config(recipe), config(LSTM_RECIPE)
    ours_args, lstm_args = ours["model"].pop("init_args"), lstm["model"].pop("init_args")
    assert ours == lstm, f"{recipe.name}: only model.init_args may differ from {LSTM_RECIPE.name}"
    differs = {k for k in ours_args.keys() | lstm_args.keys() if ours_args.get(k) != lstm_args.get(k)}
    assert differs <= MAY_DIFFER, f"{recipe.name} changes {sorted(differs - MAY_DIFFER)}"
