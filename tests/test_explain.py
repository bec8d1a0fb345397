"""`zoo classify --explain`: leave-one-token-out effects (SequenceClassifier.token_effects), their
picture over words (zoo.viz.token_heatmap_png) and the command, on a tiny untrained classifier."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.tokenizers import train_tokenizer
from zoo.cli import classify
from zoo.tasks.classifier import SequenceClassifier
from zoo.viz import CELL_H, CELL_W, layout, token_heatmap_png

TRAIN = ["a great film , moving and funny", "a dull film , far too long", "not good , not bad", "the best film of the year"]
TEXT = "a great film , far too long"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    tokenizer = train_tokenizer(TRAIN, vocab_size=100, min_frequency=1)
    model = SequenceClassifier(tokenizer.to_str(), ["neg", "pos"], cell="lstm", embedding_dim=8, hidden_size=8, pool="max")
    with torch.no_grad():  # random weights on a scale where deleting a word moves p by a visible amount
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.eval()


def test_effects_are_the_differences_of_two_predictions(model):
    result = model.token_effects(TEXT)
    words = TEXT.split()
    assert result["tokens"] == words and len(result["effects"]) == len(words) and result["text_tokens"] == len(words)
    full = model.predict(TEXT)[0]
    assert result["label"] == full["label"] and result["prob"] == pytest.approx(full["probs"][full["label"]], abs=1e-6)
    for t in range(len(words)):
        without = model.predict(" ".join(words[:t] + words[t + 1 :]))[0]["probs"][result["label"]]
        assert result["effects"][t] == pytest.approx(result["prob"] - without, abs=1e-6)
    assert max(abs(e) for e in result["effects"]) > 0.01  # the check above compares numbers that move


def test_effects_are_over_the_tokens_the_model_reads(model):
    model.hparams.text_max_tokens, model.hparams.text_truncation = 4, "head_tail"  # keeps 1 + 3 tokens
    try:
        result = model.token_effects(TEXT)
    finally:
        model.hparams.text_max_tokens, model.hparams.text_truncation = None, None
    assert result["tokens"] == ["a", "far", "too", "long"] and len(result["effects"]) == 4 and result["text_tokens"] == 7


def test_effects_of_one_token_and_of_no_token(model):
    one = model.token_effects("great")  # deleting the only token leaves the empty text, read as [<unk>]
    empty = model.predict("")[0]["probs"][one["label"]]
    assert one["tokens"] == ["great"] and one["effects"] == pytest.approx([one["prob"] - empty], abs=1e-6)
    with pytest.raises(ValueError, match="has no tokens"):
        model.token_effects("<br />  ")


def test_token_layout_keeps_words_whole():
    assert layout(["ab", "cde", "f"], 6) == [(0, 0), (0, 3), (1, 0)]  # "f" would start at column 7
    assert layout("ab\ncd", 10) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]  # characters as before


def test_token_picture_colours_words_on_a_symmetric_scale(tmp_path):
    path = token_heatmap_png(["good", "bad"], [0.2, -0.1], tmp_path / "t.png", dpi=100)
    pixels = matplotlib.image.imread(path)[..., :3]  # no title: row 0 starts at the top
    cell = lambda col: pixels[int(CELL_H * 100 * 0.15), int((col + 0.1) * CELL_W * 100)]  # noqa: E731
    red, gap, blue = cell(0), cell(4), cell(5)
    assert red[0] > 0.3 and red[2] < 0.2  # the top of the scale: dark red
    assert gap.min() > 0.95  # the blank column between two words
    assert blue[2] > blue[0] and blue.min() > 0.3  # -0.1 on a ±0.2 scale: a light blue, not the darkest
    with pytest.raises(ValueError, match="one value per token"):
        token_heatmap_png(["good"], [0.2, 0.1], tmp_path / "u.png")


def test_explain_writes_one_png_per_text(model, tmp_path, capsys):
    folder = model.save_pretrained(tmp_path / "tiny")
    fig = tmp_path / "out" / "fig.png"
    assert classify.main([str(folder), TEXT, "a dull film", "--explain", str(fig)]) == 0
    for path in (fig, tmp_path / "out" / "fig_1.png"):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 500
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # the labels are still printed


def test_explain_reports_an_empty_text_and_explains_the_others(model, tmp_path, capsys):
    folder = model.save_pretrained(tmp_path / "tiny")
    fig = tmp_path / "fig.png"
    assert classify.main([str(folder), "a dull film", "", "--explain", str(fig)]) == 3  # some inputs failed
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1] == "ERROR\targument 2: text '' has no tokens (empty, or only markup): nothing to explain"
    assert fig.exists()  # the good text's figure (position 0) is drawn; the empty one has none
    assert not (tmp_path / "fig_1.png").exists()


def test_shipped_model_credits_the_word_that_decides():
    result = SequenceClassifier.from_pretrained("imdb_bigru").token_effects("Slow at first, but the last hour is brilliant.")
    assert result["label"] == "pos"
    assert result["tokens"][int(np.argmax(result["effects"]))] == "brilliant"
