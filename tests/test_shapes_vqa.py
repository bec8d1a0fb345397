"""ShapesVQA: every question well posed and answered right, answers balanced, boxes where the answer is."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from datamodules.shapes_captions import SHAPE_COLOURS, SHAPE_KINDS
from datamodules.shapes_vqa import (
    QUESTION_TYPES,
    RELATIONS,
    TYPE_ANSWERS,
    TYPE_CYCLE,
    ShapesVQA,
    question_type,
    shapes_question,
    shapes_questions,
)


def true_answer(objects, question: str) -> str:
    """The answer read off the scene by a second, independent reading of the question's words."""
    words = question.rstrip("?").split()
    if question.startswith("what colour is the"):
        [obj] = [o for o in objects if o.kind == words[-1]]
        return obj.colour
    if question.startswith("what shape is the"):
        [obj] = [o for o in objects if o.colour == words[-2]]
        return obj.kind
    if question.startswith("how many"):
        return str(sum(o.colour == words[2] for o in objects))
    if question.startswith("is there a"):
        return "yes" if any(o.colour == words[-2] and o.kind == words[-1] for o in objects) else "no"
    relation = " ".join(words[3:-3])
    [ref] = [o for o in objects if o.colour == words[-2] and o.kind == words[-1]]
    line, step = RELATIONS[relation]
    if line == "row":
        candidates = [(abs(o.col - ref.col), o) for o in objects if o.row == ref.row and (o.col - ref.col) * step > 0]
    else:
        candidates = [(abs(o.row - ref.row), o) for o in objects if o.col == ref.col and (o.row - ref.row) * step > 0]
    return min(candidates, key=lambda c: c[0])[1].kind


def test_every_question_is_answered_right_and_points_at_its_objects():
    for i in range(400):
        objects, _, (question, answer, targets, named) = shapes_question(5, i)
        assert answer == true_answer(objects, question), (i, question)
        kind = question_type(i)
        if kind == "colour":
            assert [objects[k].kind for k in targets] == [question.split()[-1].rstrip("?")] and targets == named
        elif kind == "shape":
            assert [objects[k].colour for k in targets] == [question.split()[-2]] and targets == named
        elif kind == "relation":
            assert objects[targets[0]].kind == answer and len(named) == 1 and named != targets
        elif kind == "count":
            assert len(targets) == int(answer)
        else:
            assert bool(targets) == (answer == "yes")


def test_answers_are_balanced_per_type_and_deterministic():
    counts = Counter()
    for i in range(len(TYPE_CYCLE) * 12):
        _, _, (_, answer, _, _) = shapes_question(0, i)
        counts[(question_type(i), answer)] += 1
    for kind, answers in TYPE_ANSWERS.items():
        assert {counts[(kind, a)] for a in answers} == {12 * TYPE_CYCLE.count(kind) // len(answers)}, kind
    assert sorted(set(TYPE_CYCLE)) == sorted(QUESTION_TYPES)
    assert shapes_question(0, 17)[2] == shapes_question(0, 17)[2]
    assert shapes_question(0, 17)[2] != shapes_question(1, 17)[2] or shapes_question(0, 17)[0] != shapes_question(1, 17)[0]


def test_ambiguous_questions_are_never_asked():
    from datamodules.shapes_captions import ShapeObject

    box = (0.0, 0.0, 10.0, 10.0)
    two_circles = [
        ShapeObject("red", "circle", 0, 0, box),
        ShapeObject("red", "circle", 0, 2, box),
        ShapeObject("blue", "square", 0, 1, box),
    ]
    assert not any(q.startswith("what colour is the circle") for q, *_ in shapes_questions(two_circles, "colour"))
    assert not any("the red circle" in q for q, *_ in shapes_questions(two_circles, "relation"))
    # the blue square has a circle on each side: the nearest one in that direction is the answer
    asked = {q: a for q, a, *_ in shapes_questions(two_circles, "relation")}
    assert asked == {"what shape is left of the blue square?": "circle", "what shape is right of the blue square?": "circle"}
    with pytest.raises(ValueError, match="unknown question type"):
        shapes_questions(two_circles, "size")


@pytest.fixture(scope="module")
def shapes_vqa():
    dm = ShapesVQA(n_train=64, n_val=16, n_test=60, batch_size=8)  # 12 type cycles: every answer equally often
    dm.setup()
    return dm


def test_datamodule_batches(shapes_vqa):
    dm = shapes_vqa
    assert dm.answer_names and sorted(dm.answer_names) == sorted({a for answers in TYPE_ANSWERS.values() for a in answers})
    assert dm.question_types == list(QUESTION_TYPES)
    batch = next(iter(dm.val_dataloader()))
    assert batch["images"].shape == (8, 3, 64, 64) and batch["ids"].shape[0] == 8
    # one true answer: its score is 1, every other 0, and it is the training target
    assert torch.equal(batch["answer_scores"].argmax(1), batch["answer"]) and torch.equal(
        batch["answer_scores"].sum(1), torch.ones(8)
    )
    assert batch["target_boxes"].shape[-1] == 4
    relation = batch["question_type"] == QUESTION_TYPES.index("relation")
    assert batch["named_boxes_mask"][relation].sum(1).eq(1).all()  # a relation names exactly one object
    for b in range(8):
        record = dm.records["val"][int(batch["index"][b])]
        assert dm.answer_names[int(batch["answer"][b])] == record.answers[0]
        assert dm.question_types[int(batch["question_type"][b])] == record.question_type
        assert int(batch["target_boxes_mask"][b].sum()) == len(record.extra["targets"])
    # the preview is the image the model sees (no resize for ShapesVQA)
    assert dm.preview("val", 0).shape == (64, 64, 3)


def test_majority_rates_are_the_balanced_rates(shapes_vqa):
    rates = shapes_vqa.majority_rates("test")
    assert rates == {kind: 1 / len(answers) for kind, answers in TYPE_ANSWERS.items()}


def test_attention_in_box_measures(shapes_vqa):
    dm = shapes_vqa
    batch = next(iter(dm.test_dataloader()))
    B, L = batch["ids"].shape[0], 16
    on_target, elsewhere = [], []
    for b in range(B):
        grid_target = torch.zeros(2, L)
        boxes = batch["target_boxes"][b, : int(batch["target_boxes_mask"][b].sum())]
        named = batch["named_boxes"][b, : int(batch["named_boxes_mask"][b].sum())]
        side = dm.scene_args["image_size"] / 4  # a layout cell, in pixels
        cell = lambda box: int((box[1] + box[3]) / 2 // side) * 4 + int((box[0] + box[2]) / 2 // side)  # noqa: E731
        if len(boxes):
            grid_target[1, cell(boxes[0])] = 1.0
        if len(named):
            grid_target[0, cell(named[0])] = 1.0
        on_target.append({"attention": grid_target})
        # every hop on a cell no object of the question is in
        taken = {cell(x) for x in [*boxes, *named]}
        free = next(c for c in range(L) if c not in taken)
        wrong = torch.zeros(2, L)
        wrong[:, free] = 1.0
        elsewhere.append({"attention": wrong})
    hits = dm.evaluation_measures(batch, on_target)
    misses = dm.evaluation_measures(batch, elsewhere)
    assert hits["attn_in_box"] and all(v == 1.0 for v in hits["attn_in_box"]) and all(v == 1.0 for v in hits["attn_in_named_box"])
    assert all(v == 0.0 for v in misses["attn_in_box"]) and len(misses["attn_in_box"]) == len(hits["attn_in_box"])
    assert dm.evaluation_measures(batch, [{"attention": None}] * B) == {"attn_in_box": [], "attn_in_named_box": []}
    # per type: each question's hit under its own type, the types together the whole
    per_type = {k: v for k, v in misses.items() if k.startswith("attn_in_box_")}
    assert sum(len(v) for v in per_type.values()) == len(misses["attn_in_box"])
    mixed = [
        on_target[b] if int(batch["question_type"][b]) == 0 else elsewhere[b] for b in range(B)
    ]  # only colour questions right
    result = dm.evaluation_measures(batch, mixed)
    assert result["attn_in_box_colour"] and all(v == 1.0 for v in result["attn_in_box_colour"])
    assert all(
        v == 0.0 for k, values in result.items() if k.startswith("attn_in_box_") and k != "attn_in_box_colour" for v in values
    )


def test_bad_settings():
    with pytest.raises(ValueError, match="max_objects"):
        ShapesVQA(max_objects=1)
    assert set(SHAPE_COLOURS) == set(TYPE_ANSWERS["colour"]) and set(SHAPE_KINDS) == set(TYPE_ANSWERS["relation"]) == set(
        TYPE_ANSWERS["shape"]
    )


def test_the_drawn_example_is_the_first_held_out_image(tmp_path, capsys):
    """`zoo answer --draw-example` writes the image the recipe's model is tested on (64 px, seed 2),
    pixel for pixel: a 128-pixel canvas with the 64-pixel scene in its corner was once answered 'blue'
    for a red circle."""
    import numpy as np
    from PIL import Image

    from zoo.cli.answer import draw_example

    path = draw_example(tmp_path / "example.png")
    data = ShapesVQA(n_train=1, n_val=1, n_test=1)
    data.records = data.read_records()
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), data.pixels("test")[0])
    question, answer = data.records["test"][0].question, data.records["test"][0].answers[0]
    assert f"question: {question!r}, true answer: {answer}" in capsys.readouterr().err
