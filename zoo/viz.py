"""Pictures of what a recurrent network does inside.

- Hidden-unit heatmaps (Karpathy, Johnson & Fei-Fei 2015): a text with every character coloured by
  one unit's activation after reading it — red high, blue low, white in the middle — as HTML
  (:func:`heatmap_html`) and PNG (:func:`heatmap_png`); the same picture over words
  (:func:`token_heatmap_png`: a classifier's leave-one-token-out effects, ``zoo classify --explain``).
- Finding interpretable units automatically (:func:`discover_units`): correlate every hidden unit
  and LSTM cell with features of the text (:mod:`zoo.features`) and draw the best unit of each.
- Gradient-through-time plots (:func:`plot_gradient_curves`) for :mod:`zoo.gradients`.

- Attention pictures: a translation's alignment (:func:`alignment_figure`) and a caption's
  attention over the image, one panel per word (:func:`attention_figure`).

Command line (:mod:`zoo.cli.visualize`)::

    zoo visualize --ckpt model.ckpt --text some.py --unit 17 --kind cell --out-dir viz/   # one unit
    zoo visualize char_lstm_python --text some.py --out-dir viz/                          # discover units

Units are read with the model's recurrent stack switched to ``backend="cells"`` (the parameters are
the same tensors; only the cells backend exposes the gates and the LSTM cell state).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from datamodules.tokenizers import encode_chars
from zoo.encoders import grid_shape
from zoo.features import FEATURES, UnitMatch, best_units, correlate
from zoo.sequences import evaluating

CMAP = "RdBu_r"  # blue = low, white = middle, red = high
NEWLINE_GLYPH = "\u21b5"  # ↵ : a newline has an activation too, so it gets a visible cell
GATE_KINDS = {"input", "forget", "output", "reset", "update"}  # sigmoid: in [0, 1]


# ---- colours -----------------------------------------------------------------------------------
def value_range(values: np.ndarray, kind: str = "hidden") -> Tuple[float, float]:
    """The colour scale of a kind of activation: gates [0, 1]; tanh-bounded kinds [-1, 1]; anything
    else (the LSTM cell, a ReLU RNN) symmetric around 0 up to the 99th percentile of the magnitude
    (a few outliers would otherwise wash every other character out to white)."""
    if kind in GATE_KINDS:
        return 0.0, 1.0
    values = np.abs(np.asarray(values, dtype=np.float64))
    if kind in ("hidden", "candidate") and (not values.size or values.max() <= 1.0):
        return -1.0, 1.0
    biggest = float(np.percentile(values, 99)) if values.size else 1.0
    biggest = biggest or float(values.max()) or 1.0
    return -biggest, biggest


def unit_colors(values: Sequence[float], vmin: float, vmax: float, cmap: str = CMAP) -> np.ndarray:
    """RGBA colours ``(n, 4)`` in [0, 1] for the values on a ``vmin..vmax`` scale."""
    import matplotlib

    scale = (np.asarray(values, dtype=np.float64) - vmin) / ((vmax - vmin) or 1.0)
    return np.asarray(matplotlib.colormaps[cmap](np.clip(scale, 0.0, 1.0)))


def _hex(rgba) -> str:
    return "#" + "".join(f"{int(round(c * 255)):02x}" for c in rgba[:3])


def _ink(rgba) -> str:
    """Black text on light backgrounds, white on dark ones."""
    luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return "#000000" if luminance > 0.5 else "#ffffff"


def _number(value: float) -> str:
    """Two decimals, or two significant digits for a scale smaller than 0.01 (not "-0.00 … 0.00")."""
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.1e}"


# ---- HTML --------------------------------------------------------------------------------------
def heatmap_html(
    text: str,
    values: Sequence[float],
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    title: str = "",
    kind: str = "hidden",
) -> str:
    """A standalone HTML page: ``text`` with each character's background coloured by ``values``
    (one per character); hovering a character shows its value."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(text):
        raise ValueError(f"{len(text)} characters but {len(values)} values: need one value per character")
    if vmin is None or vmax is None:
        lo, hi = value_range(values, kind)
        vmin, vmax = (lo if vmin is None else vmin), (hi if vmax is None else vmax)
    colors = unit_colors(values, vmin, vmax)
    spans = []
    for ch, v, rgba in zip(text, values, colors):
        shown = NEWLINE_GLYPH + "\n" if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="background-color:{_hex(rgba)};color:{_ink(rgba)}" title="{v:.3f}">{shown}</span>')
    low, mid, high = (_hex(c) for c in unit_colors([vmin, (vmin + vmax) / 2, vmax], vmin, vmax))
    legend = (
        f'<p class="legend"><span style="background-color:{low};color:#fff">&nbsp;{vmin:.2f}&nbsp;</span>'
        f'<span style="background-color:{mid}">&nbsp;{(vmin + vmax) / 2:.2f}&nbsp;</span>'
        f'<span style="background-color:{high};color:#fff">&nbsp;{vmax:.2f}&nbsp;</span></p>'
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        + html.escape(title or "hidden unit")
        + "</title><style>body{font-family:sans-serif} pre{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;"
        "font-size:13px;line-height:1.35;white-space:pre-wrap;word-break:break-all}</style></head><body>\n"
        + (f"<h3>{html.escape(title)}</h3>\n" if title else "")
        + legend
        + "\n<pre>"
        + "".join(spans)
        + "</pre>\n</body></html>\n"
    )


# ---- PNG ---------------------------------------------------------------------------------------
def layout(text: str | Sequence[str], width: int = 80) -> List[Tuple[int, int]]:
    """``(row, column)`` where each piece of ``text`` starts when drawn ``width`` columns wide.

    A string's pieces are its characters: a newline occupies the cell after its line's last character
    and then starts a new row; long lines wrap. A sequence of strings (tokens) keeps each token whole,
    ``len(token)`` columns and one blank column after it; a token that does not fit in the rest of its
    row starts the next one (a token longer than a row is cut at the right edge when drawn)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    gap = 0 if isinstance(text, str) else 1
    cells, row, col = [], 0, 0
    for piece in text:
        if col > 0 and col + len(piece) > width:
            row, col = row + 1, 0
        cells.append((row, col))
        if piece == "\n":
            row, col = row + 1, 0
        else:
            col += len(piece) + gap
    return cells


CELL_W, CELL_H = 0.09, 0.2  # inches per character cell
TITLE_H = 0.35  # inches above the text for a one-line title
TITLE_LINE_H = 0.18  # inches for each further line of the title


def heatmap_png(
    text: str | Sequence[str],
    values: Sequence[float],
    path: str | Path,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    title: str = "",
    kind: str = "hidden",
    width: int = 80,
    max_rows: Optional[int] = 60,
    dpi: int = 100,
) -> Path:
    """Draw ``text`` in a monospace grid ``width`` columns wide, each piece's cells coloured by its value,
    and save it as a PNG. The pieces are a string's characters, or the strings of a token sequence
    (see :func:`layout`); one value per piece. Rows beyond ``max_rows`` are cut. Without a title, the
    piece at ``(row, col)`` of :func:`layout` covers pixels from ``[col*CELL_W*dpi, ...)`` ×
    ``[row*CELL_H*dpi, (row+1)*CELL_H*dpi)``, one cell per character. A title may have several lines."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(text):
        what = "characters" if isinstance(text, str) else "tokens"
        raise ValueError(f"{len(text)} {what} but {len(values)} values: need one value per {what[:-1]}")
    if vmin is None or vmax is None:
        lo, hi = value_range(values, kind)
        vmin, vmax = (lo if vmin is None else vmin), (hi if vmax is None else vmax)
    cells = layout(text, width)
    rows = (cells[-1][0] + 1) if cells else 1
    if max_rows is not None and rows > max_rows:
        keep = sum(1 for r, _ in cells if r < max_rows)
        text, values, cells, rows = text[:keep], values[:keep], cells[:keep], max_rows
    colors = unit_colors(values, vmin, vmax)
    grid = np.ones((rows, width, 4))
    for piece, (r, c), rgba in zip(text, cells, colors):
        grid[r, c : c + max(len(piece), 1)] = rgba
    head = (TITLE_H + TITLE_LINE_H * title.count("\n")) if title else 0.0
    fig_h = rows * CELL_H + head
    fig = plt.figure(figsize=(width * CELL_W, fig_h), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, rows * CELL_H / fig_h))
    ax.imshow(grid, extent=(0, width, rows, 0), interpolation="nearest", aspect="auto")
    ax.set_xlim(0, width)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    fontsize = CELL_H * 72 * 0.62
    for piece, (r, c), rgba in zip(text, cells, colors):
        for i, ch in enumerate(piece[: max(width - c, 0)]):
            if ch == " ":
                continue
            glyph = NEWLINE_GLYPH if ch == "\n" else ch
            ink = "#999999" if ch == "\n" else _ink(rgba)
            ax.text(
                c + i + 0.5, r + 0.5, glyph, ha="center", va="center", family="DejaVu Sans Mono", fontsize=fontsize, color=ink
            )
    if title:
        fig.text(
            0.005,
            1 - (head * 0.5) / fig_h,
            f"{title}   [blue {_number(vmin)} … red {_number(vmax)}]",
            va="center",
            ha="left",
            fontsize=10,
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def token_heatmap_png(
    tokens: Sequence[str],
    values: Sequence[float],
    path: str | Path,
    title: str = "",
    width: int = 80,
    dpi: int = 150,
) -> Path:
    """``tokens`` as words, each on a background coloured by its value on a diverging scale centred at 0
    and symmetric (``±max |value|``): red > 0, white 0, blue < 0 — e.g. each token's effect on a
    classifier's prediction (:meth:`zoo.tasks.classifier.SequenceClassifier.token_effects`)."""
    values = np.asarray(values, dtype=np.float64)
    biggest = float(np.abs(values).max()) if values.size else 0.0
    biggest = biggest or 1.0  # all zero: any symmetric range draws them white
    return heatmap_png(list(tokens), values, path, -biggest, biggest, title, width=width, dpi=dpi)


# ---- reading a model's units -------------------------------------------------------------------
@torch.no_grad()
def activations(model, text: str, chunk: int = 2000) -> Dict[Tuple[str, int], np.ndarray]:
    """Run a :class:`~zoo.tasks.language_model.CharLanguageModel` over ``text`` (from a zero state,
    carrying the state across chunks of ``chunk`` characters) and return every layer's hidden states
    and gates: ``{(kind, layer): (len(text), units)}``, kind ``hidden`` or a gate name (LSTM:
    ``input forget candidate output cell``; GRU: ``reset update candidate``)."""
    if not text:
        raise ValueError("no text to visualize")
    ids = encode_chars(text, model.vocab).to(model.device)[None]
    rnn = model.rnn
    backend, rnn.backend = rnn.backend, "cells"  # same parameters; the cells backend exposes gates
    parts: Dict[Tuple[str, int], List[np.ndarray]] = {}
    state = None
    try:
        with evaluating(model):
            for start in range(0, ids.shape[1], chunk):
                _, state, out = model(ids[:, start : start + chunk], state, return_hidden=True, return_gates=True)
                for layer, (hidden, gates) in enumerate(zip(out.hidden, out.gates)):
                    parts.setdefault(("hidden", layer), []).append(hidden[0].float().cpu().numpy())
                    for name, value in gates.items():
                        parts.setdefault((name, layer), []).append(value[0].float().cpu().numpy())
    finally:
        rnn.backend = backend
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


def discover_units(
    acts: Mapping[Tuple[str, int], np.ndarray],
    features: Mapping[str, np.ndarray],
    kinds: Sequence[str] = ("hidden", "cell"),
    split: float = 0.5,
    skip: int = 50,
) -> List[dict]:
    """The unit that follows each feature best, chosen on the first ``split`` of the text and checked
    on the rest (so a high correlation is not an artefact of picking the best of many units).

    Returns one row per feature: ``feature, kind, layer, unit, r_select, r_heldout`` (Pearson), sorted
    by ``|r_heldout|``. The first ``skip`` characters (the state is still warming up from zero) are left
    out. A feature constant on either part is skipped.
    """
    chosen = {k: v for k, v in acts.items() if k[0] in kinds}
    if not chosen:
        raise ValueError(f"no activations of kinds {list(kinds)} (have {sorted({k[0] for k in acts})})")
    n = len(next(iter(chosen.values())))
    cut = skip + int((n - skip) * split)
    first = {k: v[skip:cut] for k, v in chosen.items()}
    second = {k: v[cut:] for k, v in chosen.items()}
    rows = []
    for name, values in features.items():
        a, b = np.asarray(values)[skip:cut], np.asarray(values)[cut:]
        if a.std() == 0 or b.std() == 0:
            continue
        match: UnitMatch = best_units(first, {name: a})[name][0]
        r_held = float(correlate(second[(match.kind, match.layer)][:, [match.unit]], {name: b})[name][0])
        rows.append({**match.as_dict(), "r_select": match.r, "r_heldout": r_held})
        del rows[-1]["r"]
    return sorted(rows, key=lambda row: -abs(row["r_heldout"]))


def report_markdown(rows: List[dict], images: Optional[Mapping[str, str]] = None) -> str:
    lines = [
        "| feature | unit | r (selection half) | r (held-out half) | meaning |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        unit = f"{row['kind']} L{row['layer']} #{row['unit']}"
        lines.append(
            f"| {row['feature']} | {unit} | {row['r_select']:+.3f} | {row['r_heldout']:+.3f} | {FEATURES.get(row['feature'], '')} |"
        )
    if images:
        lines.append("")
        for name, image in images.items():
            lines.append(f"![{name}]({image})")
    return "\n".join(lines) + "\n"


def show_window(text: str, values: np.ndarray, start: int = 0, chars: int = 1500) -> Tuple[str, np.ndarray]:
    """The slice of text to draw: ``chars`` characters from ``start``, extended to a line start."""
    begin = text.rfind("\n", 0, start) + 1 if start else 0
    return text[begin : begin + chars], values[begin : begin + chars]


# ---- gradient-through-time plots ---------------------------------------------------------------
def plot_gradient_curves(curves: Mapping[str, np.ndarray], path: str | Path, title: str = "", relative: bool = False) -> Path:
    r"""One line per label: :math:`\lVert\partial L/\partial h_t\rVert` (log scale) against the distance
    from the loss. ``relative`` divides each curve by its value at distance 0."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    for label, curve in curves.items():
        curve = np.asarray(curve, dtype=np.float64)
        if relative:
            curve = curve / (curve[0] or 1.0)
        ax.semilogy(np.arange(len(curve)), np.maximum(curve, 1e-30), label=label)
    ax.set_xlabel("distance from the loss (steps back in time)")
    ax.set_ylabel(r"$\|\partial L/\partial h_t\|$" + (" / value at distance 0" if relative else ""))
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- the command -------------------------------------------------------------------------------
def unit_title(kind: str, layer: int, unit: int, extra: str = "") -> str:
    return f"{kind} layer {layer} unit {unit}" + (f" — {extra}" if extra else "")


def write_unit(
    text: str,
    values: np.ndarray,
    out: Path,
    stem: str,
    kind: str,
    title: str,
    start: int = 0,
    chars: int = 1500,
    width: int = 80,
) -> Tuple[Path, Path]:
    """Write ``out/stem.html`` and ``out/stem.png``: the window of ``chars`` characters from ``start``,
    on the colour scale of the unit's values over the whole text (so windows are comparable)."""
    vmin, vmax = value_range(values, kind)
    shown, shown_values = show_window(text, values, start, chars)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / f"{stem}.html"
    html_path.write_text(heatmap_html(shown, shown_values, vmin, vmax, title, kind), encoding="utf-8")
    png_path = heatmap_png(shown, shown_values, out / f"{stem}.png", vmin, vmax, title, kind, width=width)
    return html_path, png_path


# ---- attention alignments ------------------------------------------------------------------------
def figure_array(fig) -> np.ndarray:
    """A matplotlib figure as an ``(H, W, 3)`` uint8 array (what loggers' ``log_image`` takes); closes it."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array


def alignment_figure(
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    weights,
    path: Optional[str | Path] = None,
    title: str = "",
):
    """The attention alignment of one translation (Bahdanau et al. 2015, figure 3): row ``t`` is the
    distribution over the source tokens when target token ``t`` was emitted, dark = high weight.
    ``weights`` ``(len(target_tokens), len(source_tokens))``. Written to ``path`` (PNG) when given;
    returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = np.asarray(torch.as_tensor(weights, dtype=torch.float32).cpu())
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(
            f"weights of shape {weights.shape} for {len(target_tokens)} target and {len(source_tokens)} source tokens"
        )
    width = max(3.0, 0.42 * len(source_tokens) + 1.6)
    height = max(2.5, 0.34 * len(target_tokens) + 1.4)
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), list(source_tokens), rotation=90)
    ax.set_yticks(range(len(target_tokens)), list(target_tokens))
    ax.xaxis.tick_top()
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig


# ---- a caption's attention over the image (Xu et al. 2015's figure) --------------------------
def attention_figure(
    image: np.ndarray,
    words: Sequence[str],
    attention: Optional[Tensor],
    path: Optional[str | Path] = None,
    columns: int = 5,
    title: str = "",
):
    """The image, then one panel per generated word with the image lit where the model looked (the
    attention map upsampled to the image, bright = high weight) and the most attended cell outlined
    (Xu et al. 2015, figures 2-3). ``attention`` ``(n_words, L)`` over a square grid; ``None`` (Show and
    Tell) draws the image with its caption only; ``title`` goes above the panels (a VQA figure's
    question and answer, its panels the attention hops). Returns the matplotlib figure (saved as PNG at
    ``path`` when given)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    image = np.asarray(image)
    H, W = image.shape[:2]
    panels = 1 + (len(words) if attention is not None else 0)
    cols = min(columns, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(image)
    axes[0, 0].set_title(" ".join(words) if attention is None else "input", fontsize=9, wrap=True)
    if attention is not None:
        attention = np.asarray(attention, dtype=np.float32)
        h, w = grid_shape(attention.shape[-1])
        for t, word in enumerate(words):
            ax = axes.flat[t + 1]
            grid = attention[t].reshape(h, w)
            up = np.asarray(Image.fromarray(grid / max(grid.max(), 1e-8)).resize((W, H), Image.BILINEAR))
            lit = (image.astype(np.float32) * (0.2 + 0.8 * up[..., None])).clip(0, 255).astype(np.uint8)
            ax.imshow(lit)
            r, c = divmod(int(grid.argmax()), w)
            ax.add_patch(Rectangle((c * W / w, r * H / h), W / w, H / h, fill=False, edgecolor="red", linewidth=1.2))
            ax.set_title(word, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def attention_figure_array(image: np.ndarray, words: Sequence[str], attention: Optional[Tensor], title: str = "") -> np.ndarray:
    """:func:`attention_figure` as an ``(H, W, 3)`` uint8 array (for loggers)."""
    return figure_array(attention_figure(image, words, attention, title=title))
