"""Captioned shapes: a generated caption set where the right answer is known, so a model can be
checked, not only scored.

:class:`ShapesCaptions` (the offline default of the captioning recipes): images with 1-3 coloured
shapes at known places and a caption that describes them, plus each object's box, so attention can be
checked: when the model says a colour or shape word, it should be looking at that object. The
datamodule measures that itself (:meth:`ShapesCaptions.evaluation_measures`, logged as
``val/attn_in_box``): the captioner knows captions, not shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw

from .captions import CaptionDataModule, CaptionRecord

__all__ = [
    "SHAPE_COLOURS",
    "SHAPE_KINDS",
    "ShapeObject",
    "ShapesCaptions",
    "attention_in_box",
    "caption_word_objects",
    "grounded_words",
    "render_shapes",
    "shapes_caption",
    "shapes_scene",
]

SHAPE_COLOURS: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "yellow": (230, 210, 40),
}
SHAPE_KINDS: Tuple[str, ...] = ("circle", "square", "triangle")
SHAPES_VERSION = 2  # bump when the images or captions change: cached features are keyed by it
BACKGROUND = (30, 30, 30)


@dataclass(frozen=True)
class ShapeObject:
    colour: str
    kind: str
    row: int
    col: int
    box: Tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def shapes_scene(seed: int, index: int, image_size: int = 128, layout: int = 4, max_objects: int = 3) -> List[ShapeObject]:
    """The objects of image ``index`` of the set drawn with ``seed``: 1..``max_objects`` shapes, each in
    its own cell of a ``layout`` x ``layout`` grid, in reading order (top row first, left to right).
    Each shape is 60-85% of a cell wide and shifted at most so far that its box still holds the cell's
    centre. Deterministic: the same (seed, index) always gives the same scene."""
    rng = np.random.default_rng([seed, index])
    count = int(rng.integers(1, max_objects + 1))
    cells = sorted(int(c) for c in rng.choice(layout * layout, count, replace=False))
    cell = image_size / layout
    objects = []
    for c in cells:
        row, col = divmod(c, layout)
        colour = list(SHAPE_COLOURS)[int(rng.integers(len(SHAPE_COLOURS)))]
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        size = float(rng.uniform(0.6, 0.85)) * cell
        shift = max(0.0, min((cell - size) / 2, size / 2 - 2))
        cx = (col + 0.5) * cell + float(rng.uniform(-shift, shift))
        cy = (row + 0.5) * cell + float(rng.uniform(-shift, shift))
        objects.append(ShapeObject(colour, kind, row, col, (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)))
    return objects


def render_shapes(
    objects: Sequence[ShapeObject], seed: int, index: int, image_size: int = 128, noise: float = 6.0
) -> Image.Image:
    """Draw the scene: dark background, each shape filled with its colour (+-20 per channel of shade
    variation), light Gaussian pixel noise."""
    rng = np.random.default_rng([seed, index, 1])
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        rgb = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in SHAPE_COLOURS[obj.colour])
        x0, y0, x1, y1 = obj.box
        if obj.kind == "circle":
            draw.ellipse(obj.box, fill=rgb)
        elif obj.kind == "square":
            draw.rectangle(obj.box, fill=rgb)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=rgb)
    if noise:
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, noise, (image_size, image_size, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image


def shapes_caption(objects: Sequence[ShapeObject]) -> Tuple[List[str], List[int]]:
    """The caption's words and, for each word, the object it names (-1 for the other words).

    Objects in reading order, each as "a <colour> <shape>", joined by the relation of each to the next:
    "left of" when they share a row, else "above" — "a red circle above a blue square left of a green
    triangle". So the caption is a function of the image, and exact match is a fair test.
    """
    words: List[str] = []
    owners: List[int] = []
    for k, obj in enumerate(objects):
        if k:
            relation = ["left", "of"] if obj.row == objects[k - 1].row else ["above"]
            words += relation
            owners += [-1] * len(relation)
        words += ["a", obj.colour, obj.kind]
        owners += [-1, k, k]
    return words, owners


def caption_word_objects(words: Sequence[str]) -> List[int]:
    """For a generated caption: the object each colour/shape word names, reading the k-th "a <colour>
    <shape>" phrase as object k in reading order (-1 for other words). Lets attention be checked on
    captions the model got wrong too."""
    owners, phrase = [], -1
    for w in words:
        if w == "a":
            phrase += 1
        owners.append(max(phrase, 0) if (w in SHAPE_COLOURS or w in SHAPE_KINDS) else -1)
    return owners


def grounded_words() -> List[str]:
    """The words whose attention is checked: colours and shapes."""
    return [*SHAPE_COLOURS, *SHAPE_KINDS]


def attention_in_box(
    attention: torch.Tensor, owners: Sequence[int], boxes: Sequence[Sequence[float]], size: float
) -> List[float]:
    """For each word that names an object (``owners[t] >= 0``): 1.0 if the argmax of its attention row
    ``attention[t]`` (over a square grid of ``L`` cells, row-major; ``(1, L)`` if ``L`` is not a
    square), taken at the centre of its cell in an image of ``size`` pixels, lies inside the box
    ``(x0, y0, x1, y1)`` of that object, else 0.0 (also 0.0 when the word names an object the image
    does not have)."""
    locations = int(attention.shape[-1])
    side = math.isqrt(locations)
    h, w = (side, side) if side * side == locations else (1, locations)
    hits: List[float] = []
    for t, obj in enumerate(owners):
        if obj < 0:
            continue
        if obj >= len(boxes):
            hits.append(0.0)  # names an object that is not there
            continue
        loc = int(attention[t].argmax())
        y, x = (loc // w + 0.5) * size / h, (loc % w + 0.5) * size / w
        x0, y0, x1, y1 = boxes[obj]
        hits.append(float(x0 <= x <= x1 and y0 <= y <= y1))
    return hits


class ShapesCaptions(CaptionDataModule):
    """Captioned shapes, generated on the fly: no download, deterministic from the seeds.

    Splits: ``n_train`` images from ``seed``, ``n_val`` from ``seed + 1``, ``n_test`` from ``seed + 2``
    (a held-out seed: scenes never seen in training, up to coincidences). One caption per image (see
    :func:`shapes_caption`). Items also carry ``boxes`` (the objects' boxes in pixels of the model's
    input) and ``word_objects`` (which object each caption token names, -1 for none).

    The images are drawn at ``image_size`` pixels and only normalized (no resize/crop), with the
    encoder's mean and std. With a stride-32 encoder such as timm's ``test_resnet``, a 128-pixel image
    gives a 4 x 4 feature grid, one location per layout cell.
    """

    name = "shapes"
    checks_files = False

    def __init__(
        self,
        n_train: int = 10_000,
        n_val: int = 500,
        n_test: int = 1_000,
        seed: int = 0,
        image_size: int = 128,
        layout: int = 4,
        max_objects: int = 3,
        noise: float = 6.0,
        encoder: Optional[str] = "test_resnet",
        vocab_size: int = 100,
        min_frequency: int = 1,
        max_caption_len: int = 20,
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        feature_cache_dir: Optional[str] = None,
    ) -> None:
        if not 1 <= max_objects <= layout * layout:
            raise ValueError(f"max_objects must be in [1, layout^2 = {layout * layout}], got {max_objects}")
        super().__init__(
            encoder=encoder,
            image_size=image_size,
            crop_pct=1.0,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            max_caption_len=max_caption_len,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            feature_cache_dir=feature_cache_dir,
            seed=seed,
        )
        self.split_seeds = {"train": seed, "val": seed + 1, "test": seed + 2}
        self.split_sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.scene_args = dict(image_size=image_size, layout=layout, max_objects=max_objects)
        self.noise = noise

    def describe_source(self) -> str:
        return f"ShapesCaptions(seed={self.split_seeds['train']})"

    def read_records(self) -> Dict[str, List[CaptionRecord]]:
        records: Dict[str, List[CaptionRecord]] = {}
        for split, n in self.split_sizes.items():
            seed = self.split_seeds[split]
            rows = []
            for i in range(n):
                objects = shapes_scene(seed, i, **self.scene_args)
                words, owners = shapes_caption(objects)
                rows.append(
                    CaptionRecord(
                        f"shapes:{seed}:{i}",
                        [" ".join(words)],
                        f"{seed}:{i}",
                        f"seed {seed} image {i}",
                        {"objects": objects, "owners": owners},
                    )
                )
            records[split] = rows
        return records

    def load_image(self, split: str, i: int) -> Image.Image:
        seed = self.split_seeds[split]
        return render_shapes(self.records[split][i].extra["objects"], seed, i, self.scene_args["image_size"], self.noise)

    def image_identity(self, split: str, i: int) -> Any:
        return ["shapes", SHAPES_VERSION, self.split_seeds[split], i, self.scene_args, self.noise]

    def item_extra(self, split: str) -> Callable[[int, int], Dict[str, Any]]:
        records = self.records[split]

        def extra(i: int, j: int) -> Dict[str, Any]:
            objects = records[i].extra["objects"]
            owners = records[i].extra["owners"]
            return {
                "boxes": torch.tensor([o.box for o in objects], dtype=torch.float32),
                "word_objects": torch.tensor([-1, *owners[: self.opts.max_caption_len], -1], dtype=torch.long),  # <bos> ... <eos>
            }

        return extra

    def evaluation_measures(self, batch: Dict[str, Any], predictions: List[Dict[str, Any]]) -> Dict[str, List[float]]:
        """Dataset-specific measures of the generated captions of ``batch`` (a task logs the mean of
        each list as ``{split}/<name>``). ``predictions``: one dict per example of the batch with
        ``words`` (list of str) and ``attention`` (tensor ``(n_words, L)`` over the square feature grid,
        or ``None`` without attention).

        ``attn_in_box``: for every colour or shape word generated, 1.0 if the attention argmax (the
        centre of its grid cell) lies inside the box of the object the word names, else 0.0. Words
        are tied to objects by :func:`caption_word_objects` (phrase k = object k in reading order),
        so attention is checked on wrong captions too. Empty when nothing was attended."""
        hits: List[float] = []
        size = float(self._config.size)  # boxes are in pixels of the model's input (no resize/crop)
        for b, prediction in enumerate(predictions):
            attention, words = prediction.get("attention"), prediction.get("words") or []
            if attention is None or not words:
                continue
            n_boxes = int(batch["box_mask"][b].sum())
            boxes = batch["boxes"][b, :n_boxes].tolist()
            hits.extend(attention_in_box(attention.detach().float().cpu(), caption_word_objects(words), boxes, size))
        return {"attn_in_box": hits}
