"""``zoo visualize NAME_OR_FOLDER [TEXT_FILE]``: colour a text by the activations of a character
language model's hidden units (Karpathy et al. 2015), one unit (``--unit``) or the best unit for each
feature of the text (inside a string, indentation, column, bracket depth, ...)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List

from zoo.cli import batch, common

KINDS_HELP = "hidden | cell | input | forget | output | candidate (LSTM) | reset | update (GRU) (default hidden)"


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "visualize",
        "Colour a text by the activations of a character language model's hidden units. "
        "With --unit: draw that unit. Without: correlate every hidden unit and LSTM cell with features of the "
        "text (inside a string, indentation, column, bracket depth, ...) and draw the best unit per feature.",
        inputs="TEXT_FILE",
        inputs_help="the text file to run the model over (none: --text, or the text on stdin)",
        output=False,
    )
    parser.add_argument(
        "--out-dir", metavar="DIR", help="the folder for the pictures (.html and .png), units.md and units.json (default ./viz)"
    )
    for old in ("--output", "--out"):  # the old names of --out-dir, for one release
        common.deprecated_alias(parser, old, "--out-dir", "out_dir")
    parser.add_argument("--text", help="the text file to run the model over (same as TEXT_FILE)")
    parser.add_argument("--unit", type=int, default=None, help="the unit to draw (default: discover units)")
    parser.add_argument("--layer", type=int, default=0, help="layer of the unit (default 0)")
    parser.add_argument("--kind", default="hidden", help=KINDS_HELP)
    parser.add_argument(
        "--max_chars", type=int, default=20000, help="read at most this many characters of the text (default 20000)"
    )
    parser.add_argument("--show_start", type=int, default=0, help="first character of the window drawn (default 0)")
    parser.add_argument("--show_chars", type=int, default=1500, help="characters drawn in each picture (default 1500)")
    parser.add_argument("--width", type=int, default=80, help="columns of the PNG before wrapping (default 80)")
    args = common.parse(parser, argv)
    files = [*args.inputs, *([args.text] if args.text else [])]
    if len(files) > 1:
        parser.error(f"give one text file (got {', '.join(files)})")
    prog = "zoo visualize"
    text = read_text(prog, files[0] if files else None, args.max_chars)

    def run() -> int:
        from zoo.tasks.language_model import CharLanguageModel

        model = common.load_model(args, CharLanguageModel)
        return draw(prog, model, text, args)

    return common.guarded(prog, run)


def read_text(prog: str, path: str | None, max_chars: int) -> str:
    """The first ``max_chars`` characters of the file (or stdin), read as UTF-8: at most 4 bytes a
    character are read, so a huge file costs what its window does; bytes that are not UTF-8 end the
    command in one line naming the line and the byte."""
    import codecs

    if path is None or path == "-":
        stream, name = batch.stdin_bytes(), "stdin"
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            common.fail(prog, f"{file} is not a file")
        stream, name = open(file, "rb"), str(file)
    with stream:
        data = stream.read(4 * max_chars)
    try:  # incremental: a character cut by the byte budget is not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        common.fail(prog, f"{name}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x}: {e.reason}); expected UTF-8 text")
    if not text:
        common.fail(prog, f"{name} is empty")
    return text[:max_chars]


def draw(prog: str, model, text: str, args) -> int:
    from zoo.features import text_features
    from zoo.viz import activations, discover_units, report_markdown, unit_title, write_unit

    acts = activations(model, text)
    kinds = sorted({k for k, _ in acts})
    layers = model.rnn.num_layers
    out = Path(args.out_dir or "viz").expanduser()
    if args.unit is not None:
        if args.kind not in kinds:
            common.fail(prog, f"--kind {args.kind!r} is not available for a {model.rnn.cell} (choose from {', '.join(kinds)})")
        if not 0 <= args.layer < layers:
            common.fail(prog, f"--layer {args.layer} out of range (the model has {layers} layer(s): 0..{layers - 1})")
        units = acts[(args.kind, args.layer)].shape[1]
        if not 0 <= args.unit < units:
            common.fail(prog, f"--unit {args.unit} out of range ({args.kind} has {units} units: 0..{units - 1})")
        values = acts[(args.kind, args.layer)][:, args.unit]
        paths = write_unit(
            text,
            values,
            out,
            f"{args.kind}_L{args.layer}_u{args.unit}",
            args.kind,
            unit_title(args.kind, args.layer, args.unit),
            args.show_start,
            args.show_chars,
            args.width,
        )
        if args.json:
            print(json.dumps({"kind": args.kind, "layer": args.layer, "unit": args.unit, "files": [str(p) for p in paths]}))
        else:
            print("\n".join(f"wrote {p}" for p in paths))
        return 0

    rows = discover_units(acts, text_features(text), kinds=[k for k in ("hidden", "cell") if k in kinds])
    images = {}
    for row in rows:
        values = acts[(row["kind"], row["layer"])][:, row["unit"]]
        stem = f"{row['feature']}__{row['kind']}_L{row['layer']}_u{row['unit']}"
        title = unit_title(row["kind"], row["layer"], row["unit"], f"{row['feature']} r={row['r_heldout']:+.2f}")
        write_unit(text, values, out, stem, row["kind"], title, args.show_start, args.show_chars, args.width)
        images[row["feature"]] = f"{stem}.png"
    common.write_text(out / "units.json", json.dumps(rows, indent=2) + "\n")
    common.write_text(out / "units.md", report_markdown(rows, images))
    if args.json:
        for row in rows:
            print(common.json_line({**row, "png": str(out / images[row["feature"]])}))
    else:
        print(report_markdown(rows))
    print(
        f"wrote {len(rows)} unit pictures (.html and .png), units.md and units.json to {out}",
        file=sys.stderr if args.json else sys.stdout,
    )
    return 0
