"""What each tab of ``zoo demo`` does with its model, as plain functions of the inputs.

A tab wraps one loaded model (:func:`tab_for` picks the kind by the task class) and answers with a
JSON-able dict, its pictures inline as ``data:image/png;base64`` URIs. Everything is the zoo's own
code: the task's ``predict`` (and ``token_effects``), :mod:`zoo.viz`'s pictures and the commands'
drawing helpers (``zoo classify --explain``, ``zoo caption``, ``zoo answer``, ``zoo label-frames``), the
"draw an example" inputs of those commands. Bad input raises what the task raises (an ``InputError``,
the readers' ``DataFormatError``/``CorruptImageError``/``VideoDecodeError``); :mod:`zoo.demo.app`
shows it as a message.

Sharing: the models are loaded once and shared by every request. Inference runs under the tab's
lock (one request at a time per model: ``zoo.viz.activations`` even switches the model's backend
while it reads the units), pictures under one lock for pyplot, whose figure registry is global.
"""

from __future__ import annotations

import base64
import contextlib
import io
import shlex
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from zoo.cli import answer as answer_cli
from zoo.cli import caption as caption_cli
from zoo.cli import classify as classify_cli
from zoo.cli import common
from zoo.cli import label_frames as frames_cli
from zoo.errors import InputError

PYPLOT = threading.Lock()  # matplotlib.pyplot keeps one global registry of figures: draw one at a time
_STDERR = threading.Lock()  # the commands' draw_example print their note to stderr; caught one at a time

MAX_TEXT_CHARS = 20_000  # a review, a prime: more is refused with a message
MAX_SENTENCE_CHARS = 1_000  # a sentence to translate
MAX_SAMPLE_CHARS = 2_000  # characters one sample may generate
UNITS_CHARS = 10_000  # the hidden-unit picture reads at most this many characters (zoo visualize: --max_chars)
SHOW_CHARS = 1_500  # characters drawn in the heatmap (zoo visualize: --show_chars)
STREAM_CHUNK = 20  # characters generated per step of a streamed sample
#: the unit picker's features: what the lecture's picture shows -> the zoo.features name
UNIT_GROUPS = {"indentation": "in_indentation", "quotes": "in_string", "line position": "column"}
UNITS_PER_GROUP = 3


def png_uri(path: str | Path) -> str:
    """A PNG file as a ``data:`` URI, for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def drawn(draw: Callable[[Path], Any]) -> str:
    """``draw(path)`` (a figure writer) into a temporary PNG under the pyplot lock, as a ``data:`` URI."""
    with tempfile.TemporaryDirectory(prefix="zoo-demo-") as tmp, PYPLOT:
        path = Path(tmp) / "figure.png"
        draw(path)
        return png_uri(path)


def with_note(draw_example: Callable[[Path], Path], path: Path) -> Tuple[Path, str]:
    """Run a command's ``draw_example(path)`` and keep the line it prints (the example's truth)."""
    note = io.StringIO()
    with _STDERR, contextlib.redirect_stderr(note):
        where = draw_example(path)
    return Path(where), note.getvalue().strip()


def check_text(text: Any, what: str, limit: int) -> str:
    """A non-blank string of at most ``limit`` characters, else an ``InputError`` saying which."""
    if not isinstance(text, str):
        raise InputError(f"{what}: expected text, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{what} is empty: type or paste some text")
    if len(text) > limit:
        raise InputError(f"{what} is {len(text):,} characters long; this tab reads at most {limit:,}")
    return text


class Tab:
    """One model's tab: its name, its model, its lock; ``kind`` names the page section it uses."""

    kind = ""

    def __init__(self, name: str, model: Any) -> None:
        self.name, self.model = name, model
        self.lock = threading.Lock()

    def card(self) -> Dict[str, Any]:
        """What the page says about the model: its registry entry and card (a folder: its path only)."""
        from zoo.hub.registry import list_models, model_entry

        info: Dict[str, Any] = {"name": self.name, "kind": self.kind, "task_class": type(self.model).__name__}
        if self.name not in list_models():
            return {**info, "description": f"a pretrained folder: {self.name}"}
        entry = model_entry(self.name)
        info["description"] = entry.description
        if entry.card is not None:
            card = entry.card
            info.update(
                task=card.task,
                data=card.data,
                split=card.split,
                metrics=dict(card.metrics),
                params=card.params,
                command=card.demo,
                example=example_input(card.demo),
            )
        return info


def example_input(command: str) -> str:
    """The input a card's demo command gives (``--prime``'s value, else its first input): the page's
    default. ``zoo classify imdb_bigru "review" --explain fig.png`` -> ``"review"``."""
    words = shlex.split(command)[3:]  # zoo, the command, the model
    if "--prime" in words[:-1]:
        return words[words.index("--prime") + 1]
    inputs = [w for i, w in enumerate(words) if not w.startswith("--") and not (i and words[i - 1].startswith("--"))]
    return inputs[0] if inputs else ""


class CharLMTab(Tab):
    """A character LM: a streamed sample, and the hidden-unit heatmap of a text (Karpathy et al. 2015)."""

    kind = "char_lm"

    def sample(self, prime: str, temperature: float = 0.8, length: int = 500, seed: Optional[int] = None) -> Iterator[str]:
        """The prime, then the sample in pieces of :data:`STREAM_CHUNK` characters as they are made.
        Each piece is the task's ``predict`` continuing the text so far: reading the whole text from a
        zero state gives the state the sampler carried, so the pieces are one sample (``seed``: piece
        ``k`` uses ``seed + k``, reproducible)."""
        check_text(prime, "the prime", MAX_TEXT_CHARS)
        if not 0 <= length <= MAX_SAMPLE_CHARS:
            raise InputError(f"length must be between 0 and {MAX_SAMPLE_CHARS}, got {length}")
        if not 0 <= temperature <= 10:
            raise InputError(f"temperature must be between 0 and 10, got {temperature}")
        with self.lock:  # a bad prime fails here, before the response starts
            self.model.predict([prime], length=0)

        def pieces() -> Iterator[str]:
            yield prime
            text, k = prime, 0
            while len(text) - len(prime) < length:
                n = min(STREAM_CHUNK, length - (len(text) - len(prime)))
                with self.lock:
                    text = self.model.predict([text], length=n, temperature=temperature, seed=None if seed is None else seed + k)[
                        0
                    ]["text"]
                yield text[-n:]
                k += 1

        return pieces()

    def units(self, text: str, unit: Optional[str] = None) -> Dict[str, Any]:
        """Read ``text`` (its first :data:`UNITS_CHARS` characters) through the model: the units most
        correlated with indentation, quotes and line position (the picker), and the heatmap of
        ``unit`` (``"kind:layer:unit"``; default the picker's first) over the first
        :data:`SHOW_CHARS` characters, red = high, blue = low."""
        from zoo.features import best_units, text_features
        from zoo.viz import activations, unit_title, write_unit

        text = check_text(text, "the text", 5 * 2**20)[:UNITS_CHARS]
        with self.lock:
            acts = activations(self.model, text)
        features = text_features(text)
        read = {key: value for key, value in acts.items() if key[0] in ("hidden", "cell")}
        matches = best_units(read, {group: features[name] for group, name in UNIT_GROUPS.items()}, top=UNITS_PER_GROUP)
        picker = [
            {
                "group": group,
                "kind": m.kind,
                "layer": m.layer,
                "unit": m.unit,
                "r": round(m.r, 3),
                "value": f"{m.kind}:{m.layer}:{m.unit}",
            }
            for group, found in matches.items()
            for m in found
            if m.r
        ]
        kind, layer, index = self.parse_unit(unit or (picker[0]["value"] if picker else "hidden:0:0"), acts)
        values = acts[(kind, layer)][:, index]
        extra = next((f"{p['group']} r={p['r']:+.2f}" for p in picker if p["value"] == f"{kind}:{layer}:{index}"), "")
        with tempfile.TemporaryDirectory(prefix="zoo-demo-") as tmp, PYPLOT:
            _, png = write_unit(text, values, Path(tmp), "unit", kind, unit_title(kind, layer, index, extra), 0, SHOW_CHARS)
            heatmap = png_uri(png)
        return {
            "units": picker,
            "unit": f"{kind}:{layer}:{index}",
            "heatmap": heatmap,
            "chars": len(text),
            "shown": min(len(text), SHOW_CHARS),
        }

    @staticmethod
    def parse_unit(unit: str, acts: Dict[Tuple[str, int], Any]) -> Tuple[str, int, int]:
        """``"kind:layer:unit"`` checked against the activations read (an ``InputError`` naming what exists)."""
        kind, _, rest = str(unit).partition(":")
        layer, _, index = rest.partition(":")
        if not (layer.isdigit() and index.isdigit()):
            raise InputError(f"unit {unit!r}: expected kind:layer:unit, e.g. hidden:0:17")
        if (kind, int(layer)) not in acts:
            raise InputError(f"unit {unit!r}: no {kind} layer {layer} (have {', '.join(f'{k}:{l}' for k, l in sorted(acts))})")
        units = acts[(kind, int(layer))].shape[1]
        if int(index) >= units:
            raise InputError(f"unit {unit!r}: {kind} layer {layer} has {units} units (0..{units - 1})")
        return kind, int(layer), int(index)


class ClassifierTab(Tab):
    """A sequence classifier: label, probability, and each word coloured by its effect (``--explain``)."""

    kind = "classifier"

    def classify(self, text: str) -> Dict[str, Any]:
        import matplotlib.colors
        import numpy as np

        from zoo.viz import unit_colors

        text = check_text(text, "the review", MAX_TEXT_CHARS)
        with self.lock:
            result = self.model.predict([text])[0]
            effects = self.model.token_effects(text)
        biggest = max(max((abs(e) for e in effects["effects"]), default=0.0), 1e-12)
        colours = unit_colors(effects["effects"], -biggest, biggest)
        words = [
            {
                "token": token,
                "effect": round(effect, 4),
                "colour": matplotlib.colors.to_hex(rgba),
                "ink": "#ffffff" if abs(effect) > 0.6 * biggest else "#000000",
            }
            for token, effect, rgba in zip(effects["tokens"], effects["effects"], colours)
        ]
        figure = drawn(lambda path: classify_cli.draw_effects(effects, self.name, path))
        label = result["label"]
        return {
            "label": label,
            "probability": round(float(result["probs"][label]), 4),
            "probs": {k: round(float(v), 4) for k, v in result["probs"].items()},
            "words": words,
            "read_tokens": len(words),
            "text_tokens": int(effects["text_tokens"]),
            "figure": figure,
            "max_effect": float(np.float64(biggest)),
        }


class TranslatorTab(Tab):
    """A seq2seq model: the translation at each beam width, and the attention alignment."""

    kind = "translator"

    def translate(self, sentence: str, beam_size: int = 5) -> Dict[str, Any]:
        from zoo.viz import alignment_figure

        sentence = check_text(sentence, "the sentence", MAX_SENTENCE_CHARS)
        if not 1 <= beam_size <= 16:
            raise InputError(f"beam size must be between 1 and 16, got {beam_size}")
        widths = sorted({1, beam_size})
        with self.lock:
            results = {k: self.model.predict([sentence], beam_size=k)[0] for k in widths}
        best = results[beam_size]
        beams = [{"beam_size": k, "translation": r["translation"], "score": round(r["score"], 4)} for k, r in results.items()]
        alignment = None
        if best.get("attention") is not None:
            alignment = drawn(
                lambda path: common.save_figure(
                    alignment_figure(best["source_tokens"], best["target_tokens"], best["attention"], title=best["translation"]),
                    path,
                )
            )
        return {"translation": best["translation"], "beams": beams, "alignment": alignment}


class ImageTab(Tab):
    """A model of images: an uploaded image, or the command's example drawn."""

    draw_example: Callable[[Path], Path] = staticmethod(caption_cli.draw_example)

    def example(self, folder: Path) -> Tuple[Path, str]:
        return with_note(type(self).draw_example, folder / "example.png")


class CaptionerTab(ImageTab):
    """An image captioner: the caption and one attention panel per word (Xu et al. 2015)."""

    kind = "captioner"

    def caption(self, image: str | Path) -> Dict[str, Any]:
        with self.lock:
            result = self.model.predict([str(image)])[0]
        figure = drawn(lambda path: caption_cli.write_figure(self.model, str(image), result, path))
        return {
            "caption": result["caption"],
            "words": list(result["words"]),
            "figure": figure,
            "attention": result.get("attention") is not None,
        }


class VQATab(ImageTab):
    """A visual question answerer: the answer, its probability, and each hop's attention."""

    kind = "vqa"
    draw_example = staticmethod(answer_cli.draw_example)

    def answer(self, image: str | Path, question: str) -> Dict[str, Any]:
        question = check_text(question, "the question", MAX_SENTENCE_CHARS)
        with self.lock:
            result = self.model.predict([(str(image), question)])[0]
        figure = None
        if result["attention"] is not None:
            figure = drawn(lambda path: answer_cli.write_figure(self.model, str(image), result, path))
        return {
            "answer": result["answer"],
            "probability": round(float(result["probability"]), 4),
            "top": [[a, round(float(p), 4)] for a, p in result["top"]],
            "unknown_words": list(result["unknown_words"]),
            "figure": figure,
        }


class VideoTab(Tab):
    """A frame classifier: every frame's label, as runs and as the label strip."""

    kind = "video"

    def example(self, folder: Path) -> Tuple[Path, str]:
        return with_note(frames_cli.draw_example, folder / "example_clip")

    def label(self, clip: str | Path) -> Dict[str, Any]:
        with self.lock:
            result = self.model.predict([str(clip)])[0]
        result["video"] = Path(str(clip)).name
        labels: List[str] = list(result["labels"]) if "labels" in result else [result["label"]]
        order = frames_cli.label_order(self.model)
        strip = drawn(lambda path: common.save_figure(frames_cli.label_strip([result], order), path))
        return {"labels": labels, "runs": frames_cli.runs(labels), "frames": len(labels), "strip": strip}


def tab_for(name: str, model: Any) -> Tab:
    """The tab of a loaded model, by its task class (an ``InputError`` for a task the demo cannot show)."""
    from zoo.tasks.captioner import ImageCaptioner
    from zoo.tasks.classifier import SequenceClassifier
    from zoo.tasks.frame_classifier import FrameClassifier
    from zoo.tasks.language_model import CharLanguageModel
    from zoo.tasks.seq2seq import Seq2Seq
    from zoo.tasks.vqa import VisualQuestionAnswerer

    kinds: Sequence[Tuple[type, type]] = (
        (CharLanguageModel, CharLMTab),
        (SequenceClassifier, ClassifierTab),
        (Seq2Seq, TranslatorTab),
        (ImageCaptioner, CaptionerTab),
        (VisualQuestionAnswerer, VQATab),
        (FrameClassifier, VideoTab),
    )
    for task, tab in kinds:
        if isinstance(model, task):
            return tab(name, model)
    raise InputError(f"{name}: the demo has no tab for a {type(model).__name__}")
