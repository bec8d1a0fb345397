"""Text features for finding interpretable hidden units automatically.

A unit is "interpretable" when its activation over a text follows a property of the text that the
network was never told about: being inside a string, the depth of indentation, the position in the
line, ... (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent Networks").

:func:`text_features` computes such properties for every character of a text, with one convention
that matters: the value at position ``t`` describes the text *after reading character t*, because
that is all the hidden state ``h_t`` has seen. So the opening quote of a string is already "inside
the string" and the closing quote is not any more.

:func:`correlate` then gives the Pearson correlation of every unit with every feature, and
:func:`best_units` the unit that follows each feature most closely.

The features are computed by a small hand-written scanner that understands enough of Python
(strings with escapes and triple quotes, comments, brackets, indentation) to be right on real
source; on other text the string/comment features are simply rare.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional

import numpy as np

# name -> one-line meaning, in the order reports list them.
FEATURES: Dict[str, str] = {
    "in_string": "inside a string literal (any quotes; opening quote included, closing quote not)",
    "in_docstring": "inside a triple-quoted string",
    "in_comment": "inside a # comment (until the end of the line)",
    "in_indentation": "in the leading whitespace of a line",
    "indent": "indentation of the current line in spaces, counted so far",
    "column": "characters read so far in this line (0 on the newline, 1 on the first character)",
    "paren_depth": "nesting depth of ( ) outside strings and comments",
    "bracket_depth": "nesting depth of [ ] and { } outside strings and comments",
    "in_parens": "paren_depth > 0",
    "line_end_near": "1 when the newline closing this line is at most 4 characters ahead (needs the future: a unit can only predict it)",
}


def text_features(text: str) -> Dict[str, np.ndarray]:
    """Every feature of :data:`FEATURES` for every character of ``text``: ``{name: float array (len,)}``."""
    n = len(text)
    out = {name: np.zeros(n, dtype=np.float32) for name in FEATURES}
    quote: Optional[str] = None  # the delimiter of the open string: ', ", ''' or """
    escaped = False  # the previous character was a backslash inside a string
    comment = False
    paren = bracket = 0
    column = indent = 0
    leading = True  # still in the leading whitespace of the line
    close_quote_run = 0  # consecutive quote characters seen inside a triple-quoted string
    i = 0
    while i < n:
        ch = text[i]
        if ch == "\n":
            # The newline ends the line (and a comment, and an unterminated single-quoted string).
            comment = False
            if quote is not None and len(quote) == 1 and not escaped:
                quote = None
            escaped, close_quote_run = False, 0
            column, indent, leading = 0, 0, True
            _set(out, i, quote, comment, leading, indent, column, paren, bracket)
            i += 1
            continue
        column += 1
        if leading and ch in " \t":
            indent += 1 if ch == " " else 4
        else:
            leading = False
        if quote is not None:  # inside a string: only the closing delimiter matters
            if escaped:
                escaped, close_quote_run = False, 0
            elif ch == "\\":
                escaped, close_quote_run = True, 0
            elif len(quote) == 1:
                if ch == quote:
                    quote = None  # the closing quote itself is outside
            elif ch == quote[0]:
                close_quote_run += 1
                if close_quote_run == 3:
                    quote = None
            else:
                close_quote_run = 0
        elif comment:
            pass
        elif ch == "#":
            comment = True
        elif ch in "'\"":
            if text.startswith(ch * 3, i):
                quote, close_quote_run = ch * 3, 0
                # the three opening quotes are all inside
                for j in range(3):
                    _set(out, i + j, quote, comment, False, indent, column + j, paren, bracket)
                column += 2
                i += 3
                continue
            quote = ch
        elif ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(0, paren - 1)
        elif ch in "[{":
            bracket += 1
        elif ch in "]}":
            bracket = max(0, bracket - 1)
        _set(out, i, quote, comment, leading, indent, column, paren, bracket)
        i += 1
    # the future-looking feature: distance to the next newline
    next_newline = n
    for i in range(n - 1, -1, -1):
        if text[i] == "\n":
            next_newline = i
        out["line_end_near"][i] = 1.0 if 0 < next_newline - i <= 4 else 0.0
    return out


def _set(out, i, quote, comment, leading, indent, column, paren, bracket) -> None:
    out["in_string"][i] = quote is not None
    out["in_docstring"][i] = quote is not None and len(quote) == 3
    out["in_comment"][i] = comment
    out["in_indentation"][i] = leading
    out["indent"][i] = indent
    out["column"][i] = column
    out["paren_depth"][i] = paren
    out["bracket_depth"][i] = bracket
    out["in_parens"][i] = paren > 0


# ---- correlation -------------------------------------------------------------------------------
def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    centered = x - x.mean(0, keepdims=True)
    std = np.sqrt((centered**2).mean(0))
    return centered / np.where(std > 0, std, 1.0), std > 0


def correlate(activations: np.ndarray, features: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Pearson correlation of every unit with every feature.

    ``activations``: ``(time, units)``; ``features``: ``{name: (time,)}``. Returns ``{name: (units,)}``;
    a constant unit or feature correlates 0 with everything (not NaN).
    """
    activations = np.asarray(activations)
    if activations.ndim != 2:
        raise ValueError(f"activations must be (time, units), got shape {activations.shape}")
    z_units, alive = _standardize(activations)
    result = {}
    for name, values in features.items():
        values = np.asarray(values)
        if values.shape != (activations.shape[0],):
            raise ValueError(f"feature {name!r} has shape {values.shape}, expected ({activations.shape[0]},)")
        z_feature, feature_alive = _standardize(values[:, None])
        r = (z_units * z_feature).mean(0) if feature_alive[0] else np.zeros(activations.shape[1])
        result[name] = np.where(alive, r, 0.0)
    return result


@dataclass
class UnitMatch:
    """The unit that follows one feature best."""

    feature: str
    kind: str  # hidden | cell | a gate name
    layer: int
    unit: int
    r: float  # Pearson correlation (its sign says whether the unit is high or low on the feature)

    def as_dict(self) -> dict:
        return asdict(self)


def best_units(
    activations: Mapping[tuple, np.ndarray], features: Mapping[str, np.ndarray], top: int = 1
) -> Dict[str, List[UnitMatch]]:
    """For each feature, the ``top`` units of highest ``|r|`` over all the activation sets given.

    ``activations``: ``{(kind, layer): (time, units)}``, e.g. ``{("hidden", 0): h, ("cell", 0): c}``.
    """
    candidates: Dict[str, List[UnitMatch]] = {name: [] for name in features}
    for (kind, layer), acts in activations.items():
        for name, r in correlate(acts, features).items():
            order = np.argsort(-np.abs(r))[:top]
            candidates[name].extend(UnitMatch(name, kind, int(layer), int(u), float(r[u])) for u in order)
    return {name: sorted(c, key=lambda m: -abs(m.r))[:top] for name, c in candidates.items()}
