"""ShapesVQA: questions about generated shapes, where the answer and the place to look are both known.

The images are ShapesCaptions' (:func:`~datamodules.shapes_captions.shapes_scene` and
:func:`~datamodules.shapes_captions.render_shapes`: coloured circles, squares and triangles, one per
cell of a 4 x 4 layout), with 1-``max_objects`` objects. Five question types, a fifth each
(:data:`TYPE_CYCLE`):

=============  ==============================================  =====================================
type           question                                        answers
=============  ==============================================  =====================================
``colour``     what colour is the <shape>?                     red, green, blue, yellow
``shape``      what shape is the <colour> one?                 circle, square, triangle
``relation``   what shape is <left of|right of|above|below>    circle, square, triangle
               the <colour> <shape>?
``count``      how many <colour> shapes are there?             0, 1, 2, 3
``exist``      is there a <colour> <shape>?                    yes, no
=============  ==============================================  =====================================

Why ``shape`` questions: every other question about a shape makes the model find the object by its
shape (attention on shape features) before the answer can teach it shapes; a model trained on the
other four alone learned colours at once and shapes hardly at all (docs/results.md, VQA). Asked of the
one object of a colour, a shape question is found by colour and answered by shape: it teaches the
image encoder the shapes directly.

Every question has exactly one right answer: a ``colour`` question is asked only of a shape the image
holds once (a ``shape`` question of a colour it holds once); a ``relation`` names an object the image holds once and asks for the *nearest* object in
that direction in its row (left/right) or column (above/below).

**Balanced answers.** Example ``i`` first takes its type (:func:`question_type`) and its answer (the type's
answers in turn, so each is equally common), then draws scenes until one has a question of that type with that answer
and picks one of those questions at random. So the question's words say nothing of the answer: a
model that reads only the question stays at the majority rate of each type (25%, 33%, 33%, 25%, 50%; the
data set prints what it measured, :meth:`ShapesVQA.majority_rates`).

**Where to look.** Each example carries ``target_boxes`` (the objects the answer is read from: the
colour question's shape, the shape question's object, the relation's nearest object, the counted
objects, the object that exists; none for "0" and "no") and ``named_boxes`` (the object the question names: the relation's reference
object; otherwise the same as the targets). :meth:`ShapesVQA.evaluation_measures` checks the model's
last attention hop against them (logged as ``val/attn_in_box``, ``val/attn_in_named_box``).

Deterministic: train, val and test are drawn from the seeds ``seed``, ``seed + 1``, ``seed + 2``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .shapes_captions import SHAPE_COLOURS, SHAPE_KINDS, ShapeObject, attention_in_box, render_shapes, shapes_scene
from .vqa import VQADataModule, VQARecord

__all__ = ["QUESTION_TYPES", "ShapesVQA", "TYPE_ANSWERS", "TYPE_CYCLE", "question_type", "shapes_question", "shapes_questions"]

QUESTION_TYPES: Tuple[str, ...] = ("colour", "shape", "relation", "count", "exist")
TYPE_ANSWERS: Dict[str, Tuple[str, ...]] = {
    "colour": tuple(SHAPE_COLOURS),
    "shape": SHAPE_KINDS,
    "relation": SHAPE_KINDS,
    "count": ("0", "1", "2", "3"),
    "exist": ("yes", "no"),
}
#: The types of examples 0, 1, 2, ... in turn. (Relations twice as often, the hardest type, measured
#: worse: shapes and colours were learned later, and relations no better; docs/results.md, VQA.)
TYPE_CYCLE: Tuple[str, ...] = QUESTION_TYPES
#: direction -> (same row or column, the step in the other coordinate that leads away from the reference)
RELATIONS: Dict[str, Tuple[str, int]] = {
    "left of": ("row", -1),
    "right of": ("row", 1),
    "above": ("col", -1),
    "below": ("col", 1),
}
SHAPES_VQA_VERSION = 1
_MAX_DRAWS = 4096  # scenes tried per example; the rarest (type, answer) needs a few dozen


def _nearest(objects: Sequence[ShapeObject], ref: ShapeObject, relation: str) -> Optional[int]:
    """Index of the nearest object in ``relation`` to ``ref`` (same row for left/right, same column for
    above/below), or None."""
    line, step = RELATIONS[relation]
    best, best_distance = None, None
    for k, obj in enumerate(objects):
        same_line = obj.row == ref.row if line == "row" else obj.col == ref.col
        offset = (obj.col - ref.col) if line == "row" else (obj.row - ref.row)
        if same_line and offset * step > 0 and (best_distance is None or abs(offset) < best_distance):
            best, best_distance = k, abs(offset)
    return best


def shapes_questions(objects: Sequence[ShapeObject], kind: str) -> List[Tuple[str, str, List[int], List[int]]]:
    """Every well-posed question of type ``kind`` about a scene: ``(question, answer, target objects,
    named objects)`` (indices into ``objects``)."""
    questions = []
    if kind == "colour":
        for shape in SHAPE_KINDS:
            having = [k for k, o in enumerate(objects) if o.kind == shape]
            if len(having) == 1:
                questions.append((f"what colour is the {shape}?", objects[having[0]].colour, having, having))
    elif kind == "shape":
        for colour in SHAPE_COLOURS:
            having = [k for k, o in enumerate(objects) if o.colour == colour]
            if len(having) == 1:
                questions.append((f"what shape is the {colour} one?", objects[having[0]].kind, having, having))
    elif kind == "relation":
        for k, ref in enumerate(objects):
            if sum(o.colour == ref.colour and o.kind == ref.kind for o in objects) != 1:
                continue  # "the red circle" must name one object
            for relation in RELATIONS:
                near = _nearest(objects, ref, relation)
                if near is not None:
                    text = f"what shape is {relation} the {ref.colour} {ref.kind}?"
                    questions.append((text, objects[near].kind, [near], [k]))
    elif kind == "count":
        for colour in SHAPE_COLOURS:
            having = [k for k, o in enumerate(objects) if o.colour == colour]
            if len(having) <= 3:
                questions.append((f"how many {colour} shapes are there?", str(len(having)), having, having))
    elif kind == "exist":
        for colour in SHAPE_COLOURS:
            for shape in SHAPE_KINDS:
                having = [k for k, o in enumerate(objects) if o.colour == colour and o.kind == shape]
                questions.append((f"is there a {colour} {shape}?", "yes" if having else "no", having, having))
    else:
        raise ValueError(f"unknown question type {kind!r}: expected one of {QUESTION_TYPES}")
    return questions


def question_type(index: int) -> str:
    """The type of example ``index`` (:data:`TYPE_CYCLE` in turn)."""
    return TYPE_CYCLE[index % len(TYPE_CYCLE)]


def shapes_question(
    seed: int, index: int, image_size: int = 64, layout: int = 4, max_objects: int = 5
) -> Tuple[List[ShapeObject], int, Tuple[str, str, List[int], List[int]]]:
    """Example ``index`` of the set drawn with ``seed``: ``(objects, scene index, (question, answer,
    targets, named))``. The scene index is the one to render the image with
    (:func:`~datamodules.shapes_captions.render_shapes`)."""
    kind = question_type(index)
    answers = TYPE_ANSWERS[kind]
    # the how-many-th question of its type this is: its answers come in turn, each equally often
    seen = (index // len(TYPE_CYCLE)) * TYPE_CYCLE.count(kind) + TYPE_CYCLE[: index % len(TYPE_CYCLE)].count(kind)
    answer = answers[seen % len(answers)]
    rng = np.random.default_rng([seed, index, 7])
    for draw in range(_MAX_DRAWS):
        scene = index * _MAX_DRAWS + draw
        objects = shapes_scene(seed, scene, image_size, layout, max_objects)
        fitting = [q for q in shapes_questions(objects, kind) if q[1] == answer]
        if fitting:
            return objects, scene, fitting[int(rng.integers(len(fitting)))]
    raise RuntimeError(
        f"no scene of {_MAX_DRAWS} draws has a {kind} question answered {answer!r} "
        f"(layout {layout}, max_objects {max_objects}): allow more objects"
    )


class ShapesVQA(VQADataModule):
    """Questions about generated shapes, balanced per type and answer (see the module docstring); no
    download, deterministic from the seeds. A split's images are drawn on first use and kept in memory
    as uint8 (50,000 images of 64 px: 0.6 GB).

    The defaults are the recipe's (``recipes/vqa_shapes_san.yaml``): 64-pixel images, whose 4 x 4 layout
    ``zoo_grid_cnn`` sees as a 4 x 4 grid (one cell per place)."""

    name = "shapes_vqa"
    agreement = 1  # one true answer per question: the VQA accuracy is plain accuracy

    def __init__(
        self,
        n_train: int = 50_000,
        n_val: int = 1_000,
        n_test: int = 2_000,
        seed: int = 0,
        image_size: int = 64,
        layout: int = 4,
        max_objects: int = 5,
        noise: float = 6.0,
        encoder: Optional[str] = "zoo_grid_cnn",
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
    ) -> None:
        if not 2 <= max_objects <= layout * layout:
            raise ValueError(f"max_objects must be in [2, layout^2 = {layout * layout}], got {max_objects}")
        super().__init__(
            encoder=encoder,
            image_size=image_size,
            crop_pct=1.0,
            num_answers=len({a for answers in TYPE_ANSWERS.values() for a in answers}),
            vocab_size=100,
            min_frequency=1,
            max_question_len=12,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        self.split_seeds = {"train": seed, "val": seed + 1, "test": seed + 2}
        self.split_sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.scene_args = dict(image_size=image_size, layout=layout, max_objects=max_objects)
        self.noise = noise
        self._pixels: Dict[str, np.ndarray] = {}

    def describe_source(self) -> str:
        return f"ShapesVQA(seed={self.split_seeds['train']})"

    def ordered_question_types(self, seen: Sequence[str]) -> List[str]:
        return list(QUESTION_TYPES)

    def read_records(self) -> Dict[str, List[VQARecord]]:
        if self.records:
            return self.records
        records: Dict[str, List[VQARecord]] = {}
        for split, n in self.split_sizes.items():
            seed, rows = self.split_seeds[split], []
            for i in range(n):
                objects, scene, (question, answer, targets, named) = shapes_question(seed, i, **self.scene_args)
                rows.append(
                    VQARecord(
                        scene,
                        question,
                        [answer],
                        question_type(i),
                        f"{seed}:{i}",
                        {"objects": objects, "targets": targets, "named": named},
                    )
                )
            records[split] = rows
        return records

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        super().setup(stage)
        print(
            "ShapesVQA: question-only majority rate per type (test): "
            + ", ".join(f"{t} {v:.3f}" for t, v in self.majority_rates("test").items()),
            flush=True,
        )

    def pixels(self, split: str) -> np.ndarray:
        """Every image of ``split`` as uint8 ``(N, S, S, 3)``, drawn on first use and kept (scoring the
        test split never draws the training images)."""
        if split not in self._pixels:
            start, size, seed = time.time(), self.scene_args["image_size"], self.split_seeds[split]
            rows = self.records[split]
            pixels = np.empty((len(rows), size, size, 3), dtype=np.uint8)
            for i, r in enumerate(rows):
                pixels[i] = np.asarray(render_shapes(r.extra["objects"], seed, r.image, size, self.noise))
            self._pixels[split] = pixels
            print(f"ShapesVQA: drew the {len(rows)} {split} images in {time.time() - start:.1f} s", flush=True)
        return self._pixels[split]

    def load_image(self, split: str, i: int):
        from PIL import Image

        return Image.fromarray(self.pixels(split)[i])

    def image_tensor(self, split: str, i: int) -> Tensor:
        # The images are drawn at the model's input size: only normalized (no resize, no crop).
        normalize = self._transform
        pixels = self.pixels(split)[i].astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray((pixels * normalize.scale - normalize.shift).transpose(2, 0, 1)))

    def item_extra(self, split: str):
        records = self.records[split]

        def extra(i: int) -> Dict[str, Any]:
            r = records[i].extra
            boxes = lambda keys: torch.tensor([r["objects"][k].box for k in keys], dtype=torch.float32).reshape(-1, 4)  # noqa: E731
            return {"target_boxes": boxes(r["targets"]), "named_boxes": boxes(r["named"])}

        return extra

    def majority_rates(self, split: str = "test") -> Dict[str, float]:
        """Per question type, the share of its most common answer in ``split``: what a model that
        never looks at the image can reach (with balanced answers, 1 / the number of answers)."""
        rates = {}
        for kind in QUESTION_TYPES:
            answers = [r.answers[0] for r in self.read_records()[split] if r.question_type == kind]
            if answers:
                rates[kind] = max(answers.count(a) for a in set(answers)) / len(answers)
        return rates

    def evaluation_measures(self, batch: Dict[str, Any], predictions: List[Dict[str, Any]]) -> Dict[str, List[float]]:
        """``attn_in_box``: for every question with a target object, 1.0 if the argmax of the last
        attention hop (over the square grid; centre of the cell) lies inside the box of a target object;
        ``attn_in_named_box``: the same for the *first* hop and the object the relation question names
        (where SAN should look first: "the red circle"); ``attn_in_box_<type>``: ``attn_in_box`` per
        question type. Empty without attention."""
        size = float(self.scene_args["image_size"])
        measures: Dict[str, List[float]] = {"attn_in_box": [], "attn_in_named_box": []}
        relation = QUESTION_TYPES.index("relation")
        for b, prediction in enumerate(predictions):
            hops = prediction.get("attention")
            if hops is None:
                continue
            hops = hops.detach().float().cpu()
            kind = int(batch["question_type"][b])
            targets = batch["target_boxes"][b, : int(batch["target_boxes_mask"][b].sum())].tolist()
            if targets:  # inside any of the target boxes (a count question has several)
                hit = float(any(attention_in_box(hops[-1:], [k], targets, size)[0] for k in range(len(targets))))
                measures["attn_in_box"].append(hit)
                measures.setdefault(f"attn_in_box_{QUESTION_TYPES[kind]}", []).append(hit)
            if kind == relation:
                boxes = batch["named_boxes"][b, : int(batch["named_boxes_mask"][b].sum())].tolist()
                measures["attn_in_named_box"].extend(attention_in_box(hops[:1], [0], boxes, size))
        return measures
