"""The pictures of docs/pretrained.md's gallery, drawn from the shipped weights with no data:

    python benchmarks/gallery.py                     # every shipped model that has a picture
    python benchmarks/gallery.py shapes_caption_soft --out docs/img/pretrained

One picture per model, ``<out>/<name>.png``, by its task (made with the commands' own drawing code):
a translator's attention alignment (``zoo translate --alignment``), a captioner's attention panels on a
held-out ShapesCaptions image (``zoo caption``), a frame classifier's per-frame labels of four
MovingShapes test clips (``zoo label-frames --strip``), a character LM's own sample text coloured by
the hidden unit that follows a feature of it best (``zoo visualize``'s unit discovery), a text
classifier's leave-one-token-out effects on a short positive and a short negative review, one panel
above the other (``zoo classify --explain``), a VQA model's attention hops on two held-out ShapesVQA
questions (``zoo answer --figure``). Then ``zoo models --update-docs docs/pretrained.md`` links every picture present.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "Ein Hund läuft über die Wiese."  # the demo sentence
PRIMES = {"char_lstm_python": "def ", "char_lstm_shakespeare": "ROMEO:", "char_slstm_shakespeare": "ROMEO:"}
FEATURE = {"char_lstm_python": "indent"}  # the unit to show when a model has one worth seeing


def translator(name: str, model: Any, path: Path) -> str:
    from zoo.cli.translate import write_alignment

    result = model.predict([SENTENCE], beam_size=5)[0]
    write_alignment(result, str(path))
    return f"{SENTENCE} -> {result['translation']}"


def captioner(name: str, model: Any, path: Path) -> str:
    from zoo.cli.caption import draw_example, write_figure

    with tempfile.TemporaryDirectory() as tmp:
        image = str(draw_example(Path(tmp) / "shapes.png"))
        result = model.predict([image])[0]
        write_figure(model, image, result, path)
    return result["caption"]


def frame_classifier(name: str, model: Any, path: Path, clips: int = 4) -> str:
    from zoo.cli import common
    from zoo.cli.label_frames import draw_example, label_order, label_strip

    with tempfile.TemporaryDirectory() as tmp:
        folders = [str(draw_example(Path(tmp) / f"test_clip_{i}", i)) for i in range(clips)]
        results = model.predict(folders)
    common.save_figure(label_strip(results, label_order(model)), path)
    return ", ".join(r["labels"][-1] for r in results)


def language_model(name: str, model: Any, path: Path) -> str:
    from zoo.features import text_features
    from zoo.viz import activations, discover_units, heatmap_png, show_window, unit_title, value_range

    prime = PRIMES.get(name, "\n")
    text = model.generate(prime, 3000, temperature=0.6, seed=0)
    acts = activations(model, text)
    kinds = [k for k in ("hidden", "cell") if any(kind == k for kind, _ in acts)]
    rows = discover_units(acts, text_features(text), kinds=kinds)
    row = next((r for r in rows if r["feature"] == FEATURE.get(name)), rows[0])
    values = acts[(row["kind"], row["layer"])][:, row["unit"]]
    vmin, vmax = value_range(values, row["kind"])
    shown, shown_values = show_window(text, values, 0, 1200)
    title = (
        f"{name}: its own sample (prime {prime!r}, temperature 0.6), coloured by "
        f"{unit_title(row['kind'], row['layer'], row['unit'])}: follows '{row['feature']}' (held-out r = {row['r_heldout']:.2f})"
    )
    heatmap_png(shown, shown_values, path, vmin, vmax, title, row["kind"])
    return f"{row['feature']}: {row['kind']} unit {row['unit']}, r = {row['r_heldout']:.2f}"


def sequence_classifier(name: str, model: Any, path: Path) -> str:
    from PIL import Image

    from zoo.cli.classify import draw_effects
    from zoo.hub.models import IMDB_REVIEWS  # the cards' demo reviews: `zoo classify NAME ... --explain` redraws these panels

    results = [model.token_effects(text) for text in IMDB_REVIEWS]
    with tempfile.TemporaryDirectory() as tmp:
        panels = [Image.open(draw_effects(r, name, Path(tmp) / f"{i}.png")).convert("RGB") for i, r in enumerate(results)]
    picture = Image.new("RGB", (max(p.width for p in panels), sum(p.height for p in panels)), "white")
    for i, panel in enumerate(panels):  # one above the other
        picture.paste(panel, (0, sum(p.height for p in panels[:i])))
    picture.save(path)
    return ", ".join(f"{r['label']} {r['prob']:.3f}" for r in results)


def question_answerer(name: str, model: Any, path: Path) -> str:
    """Two held-out ShapesVQA questions (a colour and a relation question), each as ``zoo answer
    --figure`` draws it: the image, then where each attention hop looked; stacked in one PNG."""
    import numpy as np
    from PIL import Image

    from datamodules.shapes_captions import render_shapes
    from datamodules.shapes_vqa import shapes_question
    from zoo.tasks.vqa import hop_titles
    from zoo.viz import attention_figure, figure_array

    rows, said = [], []
    for index in (0, 2):  # ShapesVQA(seed=0)'s test split is seed 2: example 0 asks a colour, 2 a relation (TYPE_CYCLE)
        objects, scene, (question, truth, _, _) = shapes_question(2, index)
        image = np.asarray(render_shapes(objects, 2, scene, model.image_config().size))
        result = model.predict((image, question))[0]
        title = f"{question} -> {result['answer']} (p = {result['probability']:.2f}; true: {truth})"
        rows.append(
            figure_array(
                attention_figure(
                    model.display_image(image), hop_titles(len(result["attention"])), result["attention"], title=title
                )
            )
        )
        said.append(f"{question} {result['answer']}")
    width = max(r.shape[1] for r in rows)
    canvas = np.full((sum(r.shape[0] for r in rows), width, 3), 255, dtype=np.uint8)
    top = 0
    for r in rows:
        canvas[top : top + r.shape[0], : r.shape[1]] = r
        top += r.shape[0]
    Image.fromarray(canvas).save(path)
    return "; ".join(said)


PICTURES = {
    "Seq2Seq": translator,
    "ImageCaptioner": captioner,
    "FrameClassifier": frame_classifier,
    "CharLanguageModel": language_model,
    "SequenceClassifier": sequence_classifier,
    "VisualQuestionAnswerer": question_answerer,
}


def draw(name: str, out: Path) -> Optional[Path]:
    """Draw ``name``'s picture into ``out/<name>.png``; ``None`` for a task without one."""
    from zoo.tasks.base import load_pretrained

    model = load_pretrained(name)
    picture = next((PICTURES[c.__name__] for c in type(model).__mro__ if c.__name__ in PICTURES), None)
    if picture is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    print(f"{name}: {picture(name, model, path)} -> {path}", flush=True)
    return path


def main(argv: Optional[list] = None) -> int:
    from zoo.hub import list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="registered names (default: every model with weights)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "pretrained")
    args = parser.parse_args(argv)
    for name in args.names or list_models(pretrained=True):
        if draw(name, args.out) is None:
            print(f"{name}: no picture for its task", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
