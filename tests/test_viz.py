"""Heatmap colours, text features, unit discovery, and `zoo visualize` end to end on a tiny checkpoint."""

from __future__ import annotations

import re

import lightning as L
import matplotlib.image
import numpy as np
import pytest

from zoo.features import best_units, correlate, text_features
from zoo.viz import (
    CELL_H,
    CELL_W,
    discover_units,
    heatmap_html,
    heatmap_png,
    layout,
    unit_colors,
    value_range,
)

RED_END, BLUE_END = "#67001f", "#053061"  # RdBu_r at 1 and at 0


def _rgb(hex_color):
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))


def test_html_colours_follow_the_values():
    page = heatmap_html("a<b\n", [1.0, -1.0, 0.0, 1.0], vmin=-1, vmax=1, title="u")
    spans = re.findall(
        r'<span style="background-color:(#[0-9a-f]{6});color:(#[0-9a-f]{6})" title="([-\d.]+)">(.*?)</span>', page, re.S
    )
    assert [s[3] for s in spans] == ["a", "&lt;", "b", "\u21b5\n"]  # escaped; the newline is visible
    assert spans[0][0] == RED_END and spans[1][0] == BLUE_END
    r, g, b = _rgb(spans[2][0])
    assert min(r, g, b) > 240  # the middle of the scale is (nearly) white
    assert spans[0][1] == "#ffffff" and spans[2][1] == "#000000"  # readable ink on dark / light cells
    assert [float(s[2]) for s in spans] == [1.0, -1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="one value per character"):
        heatmap_html("ab", [1.0])


def test_png_pixels_have_the_unit_colours(tmp_path):
    values = [1.0, -1.0, 0.0, 0.5, -0.5, 1.0]
    path = heatmap_png("      ", values, tmp_path / "u.png", vmin=-1, vmax=1, width=4, dpi=100)
    image = matplotlib.image.imread(path)[..., :3]
    expected = unit_colors(values, -1, 1)[:, :3]
    cells = layout("      ", 4)
    assert cells[4] == (1, 0)  # wrapped after 4 columns
    assert image.shape[:2] == (round(2 * CELL_H * 100), round(4 * CELL_W * 100))
    for (row, col), color in zip(cells, expected):
        y, x = int((row + 0.5) * CELL_H * 100), int((col + 0.5) * CELL_W * 100)
        np.testing.assert_allclose(image[y, x], color, atol=2 / 255)
    assert image[int(1.5 * CELL_H * 100), int(3.5 * CELL_W * 100)].min() > 0.99  # unused cell: white
    assert image[0, 0, 0] > 0.3 and image[0, 0, 2] < 0.2  # the first cell is red, not blue


def test_layout_and_ranges():
    assert layout("ab\ncd", 10) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert value_range(np.array([0.2, 0.9]), "forget") == (0.0, 1.0)
    assert value_range(np.array([-0.3, 0.9]), "hidden") == (-1.0, 1.0)
    lo, hi = value_range(np.linspace(-3, 3, 1001), "cell")
    assert lo == -hi and 2.9 < hi <= 3.0


def test_text_features_on_python():
    text = 'def f(a):\n    s = "x#(" # c)\n    return [a]\n'
    F = text_features(text)
    at = lambda name, i: F[name][i]  # noqa: E731
    q = text.index('"')
    assert at("in_string", q) == 1 and at("in_string", q + 3) == 1 and at("in_string", q + 4) == 0
    assert at("in_comment", q + 3) == 0  # a # inside a string is not a comment
    assert at("paren_depth", q + 3) == 0  # nor is a ( inside a string a paren
    assert at("in_comment", text.index("# c") + 2) == 1 and at("paren_depth", text.index("c)") + 1) == 0
    assert at("paren_depth", text.index("a):")) == 1
    assert at("indent", text.index("s =")) == 4 and at("in_indentation", text.index("s =") - 1) == 1
    assert at("column", text.index("\n")) == 0 and at("column", text.index("\n") + 1) == 1
    assert at("bracket_depth", text.index("a]")) == 1
    doc = 'x = """a\n"b"\n""" + 1\n'
    D = text_features(doc)
    assert D["in_docstring"][doc.index("b")] == 1 and D["in_string"][doc.index("+")] == 0


def test_correlation_finds_a_hand_made_unit():
    rng = np.random.default_rng(0)
    text = 'def f(x):\n    return "abc" + x  # add\n' * 50
    F = text_features(text)
    n = len(text)
    acts = rng.normal(0, 1, (n, 20))
    acts[:, 7] = 2 * F["in_string"] - 1 + rng.normal(0, 0.1, n)  # a quote unit
    acts[:, 3] = -0.1 * F["column"] + rng.normal(0, 0.1, n)  # a (negative) column counter
    acts[:, 5] = 0.0  # a dead unit: correlation 0, not NaN
    r = correlate(acts, F)
    assert r["in_string"][7] > 0.95 and r["column"][3] < -0.95 and r["in_string"][5] == 0
    best = best_units({("hidden", 0): acts, ("cell", 0): rng.normal(0, 1, (n, 20))}, F)
    assert (best["in_string"][0].kind, best["in_string"][0].unit) == ("hidden", 7)
    assert best["column"][0].unit == 3 and best["column"][0].r < -0.95
    rows = {row["feature"]: row for row in discover_units({("hidden", 0): acts}, F)}
    assert rows["in_string"]["unit"] == 7 and rows["in_string"]["r_heldout"] > 0.95


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from datamodules.char_corpus import CharCorpusDataModule
    from zoo.tasks.language_model import CharLanguageModel

    root = tmp_path_factory.mktemp("tiny_lm")
    text = root / "code.py"
    text.write_text('def f(a, b):\n    """Add."""\n    return (a + b)  # sum\n\n' * 40)
    data = CharCorpusDataModule(corpus=str(text), batch_size=2, seq_len=32, max_chars=None)
    model = CharLanguageModel(cell="lstm", hidden_size=12, embedding_dim=8, warmup_steps=1)
    trainer = L.Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=root,
    )
    trainer.fit(model, data)
    ckpt = root / "tiny.ckpt"
    trainer.save_checkpoint(ckpt)
    return ckpt, text


def test_visualize_command_one_unit(tiny_checkpoint, tmp_path, capsys):
    from zoo.cli import main

    ckpt, text = tiny_checkpoint
    out = tmp_path / "viz"
    assert (
        main(
            [
                "visualize",
                "--ckpt",
                str(ckpt),
                "--text",
                str(text),
                "--unit",
                "3",
                "--kind",
                "cell",
                "--out-dir",
                str(out),
                "--show_chars",
                "200",
            ]
        )
        == 0
    )
    page = (out / "cell_L0_u3.html").read_text()
    assert page.count("<span style=") == 200 + 3  # 200 characters + the legend's 3 swatches
    assert (out / "cell_L0_u3.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["visualize", "--ckpt", str(ckpt), "--text", str(text), "--unit", "99", "--out-dir", str(out)])
    with pytest.raises(SystemExit):
        main(["visualize", "--ckpt", str(ckpt), "--text", str(text), "--unit", "1", "--kind", "reset", "--out-dir", str(out)])


def test_visualize_command_discovers_units(tiny_checkpoint, tmp_path, capsys):
    import json

    from zoo.cli import main

    ckpt, text = tiny_checkpoint
    out = tmp_path / "found"
    assert main(["visualize", "--ckpt", str(ckpt), "--text", str(text), "--out-dir", str(out), "--show_chars", "300"]) == 0
    rows = json.loads((out / "units.json").read_text())
    assert {"in_string", "in_comment", "indent", "column"} <= {row["feature"] for row in rows}
    # r_heldout is Pearson's r of the unit and the feature on the held-out half (after the 50 warm-up
    # characters), recomputed here with numpy from the model's own activations
    from zoo.tasks.base import load_task
    from zoo.viz import activations

    source = text.read_text(encoding="utf-8")
    acts, features = activations(load_task(ckpt), source), text_features(source)
    cut = 50 + (len(source) - 50) // 2
    for row in rows:
        assert row["kind"] in ("hidden", "cell") and 0 <= row["unit"] < 12
        unit = acts[(row["kind"], row["layer"])][cut:, row["unit"]]
        assert row["r_heldout"] == pytest.approx(np.corrcoef(unit, np.asarray(features[row["feature"]])[cut:])[0, 1], abs=1e-4)
        assert (out / f"{row['feature']}__{row['kind']}_L{row['layer']}_u{row['unit']}.png").is_file()
    assert [abs(row["r_heldout"]) for row in rows] == sorted((abs(row["r_heldout"]) for row in rows), reverse=True)
    assert "| feature | unit |" in capsys.readouterr().out


def test_gradient_curve_plot(tmp_path):
    from zoo.viz import plot_gradient_curves

    path = plot_gradient_curves(
        {"rnn": np.logspace(0, -8, 50), "lstm": np.linspace(1, 0.5, 50)}, tmp_path / "g.png", relative=True
    )
    image = (matplotlib.image.imread(path)[..., :3] * 255).round()
    assert image.shape == (400, 650, 3)  # figsize 6.5 x 4 inches at 100 dpi
    for colour in ((31, 119, 180), (255, 127, 14)):  # matplotlib's first two line colours: both curves are drawn
        assert (np.abs(image - colour).max(-1) <= 2).sum() > 100
