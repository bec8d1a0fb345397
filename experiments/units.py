"""Finding interpretable units automatically in a char LM trained on Python source.

Runs the checkpoint over 40,000 characters of standard-library source it was *not* trained on (the
recipe trains on the first 1.5M characters; this text starts at character 2,000,000), correlates
every hidden unit and every LSTM cell with the text features of :mod:`zoo.features`, picks the best
unit per feature on the first half of the text and reports its correlation on the second half.
Writes the table, an HTML and a PNG per feature into ``--out`` (default ``/tmp/zoo-units``), the
PNGs of the best units into ``docs/img/`` and the numbers into ``experiments/results/units.json``.

    python -m experiments.units                          # the shipped char_lstm_python, ~1 minute
    python -m experiments.units --ckpt CKPT              # a checkpoint of recipes/char_lm.yaml you trained

The same, on any text, from the command line:

    zoo visualize char_lstm_python --text experiments/results/stdlib_heldout.txt --out viz/
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from experiments.common import IMAGES, RESULTS, markdown_table, save_json, use_threads
from zoo.features import correlate, text_features
from zoo.viz import activations, discover_units, write_unit

TEXT_START, TEXT_CHARS = 2_000_000, 40_000


def heldout_text() -> str:
    from datamodules.char_corpus import python_stdlib_text

    text = python_stdlib_text(TEXT_START + TEXT_CHARS + 5_000)
    begin = text.index("\n", TEXT_START) + 1  # start on a line
    return text[begin : begin + TEXT_CHARS]


def best_window(feature: np.ndarray, text: str, chars: int) -> int:
    """A line-aligned window where the feature varies most (so its picture shows it on and off)."""
    best, best_start = -1.0, 0
    for start in range(0, max(1, len(text) - chars), 250):
        start = text.rfind("\n", 0, start) + 1 if start else 0
        spread = float(np.std(feature[start : start + chars]))
        if spread > best:
            best, best_start = spread, start
    return best_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="char_lstm_python", help="a registered model or a pretrained folder")
    parser.add_argument("--ckpt", help="a Lightning checkpoint instead of --model")
    parser.add_argument("--show_chars", type=int, default=1100)
    parser.add_argument("--docs_top", type=int, default=6, help="copy the pictures of this many best features into docs/img")
    parser.add_argument("--out", default="/tmp/zoo-units", help="where the HTML and PNG of every feature's best unit go")
    args = parser.parse_args()
    use_threads()
    from zoo.tasks.base import load_pretrained, load_task
    from zoo.tasks.language_model import CharLanguageModel

    model = load_task(args.ckpt, CharLanguageModel) if args.ckpt else load_pretrained(args.model, CharLanguageModel)
    text = heldout_text()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stdlib_heldout.txt").write_text(text, encoding="utf-8")
    acts = activations(model, text)
    features = text_features(text)
    kinds = [k for k in ("hidden", "cell") if any(key[0] == k for key in acts)]
    rows = discover_units(acts, features, kinds=kinds)
    # Control: is the unit only reacting to the character in front of it? Correlate it, on the same
    # held-out half, with "this character is a space" and with the identity of the most telling char.
    skip = 50
    cut = skip + (len(text) - skip) // 2
    is_space = np.array([c == " " for c in text], dtype=np.float64)
    spaces = is_space[cut:] > 0
    for row in rows:
        unit = acts[(row["kind"], row["layer"])][cut:, [row["unit"]]]
        feature = features[row["feature"]][cut:]
        r_us = float(correlate(unit, {"s": is_space[cut:]})["s"][0])
        r_fs = float(correlate(feature[:, None], {"s": is_space[cut:]})["s"][0])
        r_uf = row["r_heldout"]
        row["r_is_space"], row["feature_r_is_space"] = r_us, r_fs
        # partial correlation of unit and feature with "is a space" held fixed
        row["r_partial_space"] = (r_uf - r_us * r_fs) / float(np.sqrt(max(1e-12, (1 - r_us**2) * (1 - r_fs**2))))
        # and the plain correlation among the space characters alone (None where the feature is constant there)
        r_sp = correlate(unit[spaces], {"f": feature[spaces]})["f"][0] if feature[spaces].std() > 0 else None
        row["r_heldout_spaces_only"] = None if r_sp is None else float(r_sp)
    out = Path(args.out)
    for row in rows:
        values = acts[(row["kind"], row["layer"])][:, row["unit"]]
        start = best_window(features[row["feature"]], text, args.show_chars)
        stem = f"{row['feature']}__{row['kind']}_L{row['layer']}_u{row['unit']}"
        title = (
            f"{row['kind']} layer {row['layer']} unit {row['unit']} — {row['feature']}, r = {row['r_heldout']:+.2f} (held out)"
        )
        _, png = write_unit(text, values, out, stem, row["kind"], title, start, args.show_chars)
        row["image"] = str(png)
        row["window_start"] = start
    IMAGES.mkdir(parents=True, exist_ok=True)
    for old in IMAGES.glob("unit_*.png"):
        old.unlink()
    for row in rows[: args.docs_top]:
        target = IMAGES / f"unit_{row['feature']}.png"
        shutil.copyfile(row["image"], target)
        row["docs_image"] = f"img/{target.name}"
    hp = dict(model.hparams)
    hp.pop("vocab", None)
    save_json(
        "units",
        {"model": args.ckpt or args.model, "hparams": hp, "text": {"start": TEXT_START, "chars": len(text)}, "rows": rows},
    )
    header = [
        "feature",
        "best unit",
        "r (selection half)",
        "r (held-out half)",
        "unit vs 'is a space'",
        "feature vs 'is a space'",
        "partial r, 'is a space' fixed",
        "r among spaces only",
    ]
    print(
        markdown_table(
            header,
            [
                [
                    r["feature"],
                    f"{r['kind']} L{r['layer']} #{r['unit']}",
                    f"{r['r_select']:+.3f}",
                    f"{r['r_heldout']:+.3f}",
                    f"{r['r_is_space']:+.3f}",
                    f"{r['feature_r_is_space']:+.3f}",
                    f"{r['r_partial_space']:+.3f}",
                    "–" if r["r_heldout_spaces_only"] is None else f"{r['r_heldout_spaces_only']:+.3f}",
                ]
                for r in rows
            ],
        )
    )


if __name__ == "__main__":
    main()
