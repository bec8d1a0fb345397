"""ShapesCaptions' own measure (attention argmax inside the named object's box) and what caption
batches carry for predictions: the datamodule provides them, the captioner only asks."""

from __future__ import annotations

import pytest
import torch

from datamodules.captions import caption_collate
from datamodules.shapes_captions import ShapesCaptions, attention_in_box, caption_word_objects


@pytest.fixture(autouse=True)
def zoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))


def test_attention_in_box_by_hand() -> None:
    # 2 x 2 grid over a 64 px image: cell centres at 16 and 48; object 0 in the top-left quarter.
    boxes = [(0.0, 0.0, 30.0, 30.0), (34.0, 34.0, 64.0, 64.0)]
    attention = torch.tensor(
        [
            [0.1, 0.1, 0.1, 0.7],  # "a": not grounded
            [0.7, 0.1, 0.1, 0.1],  # "red" -> object 0, argmax top-left: inside
            [0.1, 0.1, 0.1, 0.7],  # "circle" -> object 0, argmax bottom-right: outside
            [0.0, 0.0, 0.0, 1.0],
        ]
    )  # "blue" -> object 2, which the image lacks
    assert attention_in_box(attention, [-1, 0, 0, 2], boxes, 64.0) == [1.0, 0.0, 0.0]
    # not a square number of locations: one row of L cells
    row = torch.tensor([[0.0, 1.0, 0.0]])
    assert attention_in_box(row, [0], [(20.0, 0.0, 40.0, 64.0)], 60.0) == [1.0]


def test_evaluation_measures_on_a_batch() -> None:
    dm = ShapesCaptions(n_train=16, n_val=4, n_test=4, image_size=64, layout=2, batch_size=4)
    dm.setup()
    batch = caption_collate([dm.datasets["val"][i] for i in range(4)])
    assert batch["image"] == [f"shapes:1:{i}" for i in range(4)] and batch["index"].tolist() == [0, 1, 2, 3]
    predictions, expected = [], []
    for b in range(4):
        words = batch["references"][b][0].split()
        owners = caption_word_objects(words)
        boxes = batch["boxes"][b][batch["box_mask"][b]]
        attention = torch.zeros(len(words), 4)
        for t, obj in enumerate(owners):
            # look at the cell holding the box's centre: always inside (each box holds its cell's centre)
            x = float(boxes[max(obj, 0)][0] + boxes[max(obj, 0)][2]) / 2
            y = float(boxes[max(obj, 0)][1] + boxes[max(obj, 0)][3]) / 2
            attention[t, int(y // 32) * 2 + int(x // 32)] = 1.0
        predictions.append({"words": words, "attention": attention})
        expected += [1.0] * sum(o >= 0 for o in owners)
    assert dm.evaluation_measures(batch, predictions) == {"attn_in_box": expected} and len(expected) >= 4
    # an example without attention (or without words) is not measured
    skipped = predictions[:3] + [{"words": predictions[3]["words"], "attention": None}]
    last = sum(o >= 0 for o in caption_word_objects(predictions[3]["words"]))
    assert dm.evaluation_measures(batch, skipped) == {"attn_in_box": expected[: len(expected) - last]}
    assert dm.evaluation_measures(batch, [{"words": ["a"], "attention": None}] * 4) == {"attn_in_box": []}
    # the predict split is the test split, in order, with each image's id
    predicted = next(iter(dm.predict_dataloader()))
    assert predicted["image"] == [f"shapes:2:{i}" for i in range(4)] and predicted["index"].tolist() == [0, 1, 2, 3]
