"""VisualQuestionAnswerer: SAN's equations, the baselines, padding, inference and its bad inputs."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from datamodules.images import CorruptImageError
from datamodules.shapes_vqa import ShapesVQA
from zoo.encoders import grid_coordinates
from zoo.tasks.vqa import VisualQuestionAnswerer

SMALL = dict(
    encoder="test_resnet",
    pretrained=False,
    embedding_dim=8,
    hidden_size=16,
    feature_dim=16,
    feature_layers=1,
    attention_dim=8,
    classifier_hidden=16,
    dropout=0.0,
    log_images=0,
)


@pytest.fixture(scope="module")
def data():
    dm = ShapesVQA(n_train=48, n_val=16, n_test=16, image_size=64, layout=2, max_objects=3, batch_size=8)
    dm.setup()
    return dm


def built(data, **overrides) -> VisualQuestionAnswerer:
    torch.manual_seed(0)
    model = VisualQuestionAnswerer(**{**SMALL, **overrides})
    model.adopt_data(data)
    model.build_if_ready()
    return model.eval()


def batch_of(data, split="val"):
    return next(iter(data.val_dataloader() if split == "val" else data.test_dataloader()))


def test_stacked_attention_is_the_papers_equations(data):
    model = built(data, hops=3)
    batch = batch_of(data)
    with torch.no_grad():
        logits, hops = model(batch)
        u = model.encode_question(batch["ids"], batch["lengths"])
        v = model.image_grid(batch["images"])
        for k, layer in enumerate(model.hops):
            h_A = torch.tanh(layer.memory_proj(v) + layer.query_proj(u)[:, None])  # tanh(W_I v_i + W_Q u + b_A)
            p = torch.softmax(layer.v(h_A).squeeze(-1), -1)  # softmax_i(w_P^T h_A,i)
            torch.testing.assert_close(hops[:, k], p)
            u = (p[..., None] * v).sum(1) + u  # u^k = sum_i p_i v_i + u^{k-1}
        torch.testing.assert_close(logits, model.classifier(u))
    assert hops.shape == (8, 3, 4) and torch.allclose(hops.sum(-1), torch.ones(8, 3))


def test_relative_hops_score_places_from_where_the_hop_before_looked(data):
    model = built(data, hops=2, relative=True)
    batch = batch_of(data)
    with torch.no_grad():
        logits, hops = model(batch)
        u = model.encode_question(batch["ids"], batch["lengths"])
        v = model.image_grid(batch["images"])
        places = grid_coordinates(v.shape[1], v)  # (x_i, y_i)
        first, second = model.hops
        p1 = torch.softmax(first.v(torch.tanh(first.memory_proj(v) + first.query_proj(u)[:, None])).squeeze(-1), -1)
        u = (p1[..., None] * v).sum(1) + u
        looked = (p1[..., None] * places).sum(1, keepdim=True)  # c^1 = sum_i p^1_i (x_i, y_i)
        keys = torch.cat([v, places - looked], -1)  # [v_i; (x_i, y_i) - c^1]
        p2 = torch.softmax(second.v(torch.tanh(second.memory_proj(keys) + second.query_proj(u)[:, None])).squeeze(-1), -1)
        torch.testing.assert_close(hops, torch.stack([p1, p2], 1))
        torch.testing.assert_close(logits, model.classifier((p2[..., None] * v).sum(1) + u))
    assert first.memory_size == SMALL["feature_dim"] and second.memory_size == SMALL["feature_dim"] + 2
    assert built(data, hops=2).hops[1].memory_size == SMALL["feature_dim"]


def test_cells_in_boxes_follow_the_attention_in_box_rule():
    """A cell is in a box exactly when ``attention_in_box`` counts an argmax on that cell as inside it."""
    from datamodules.shapes_captions import attention_in_box
    from zoo.encoders import cells_in_boxes

    boxes = torch.tensor([[[0.0, 0.0, 31.0, 31.0], [40.0, 40.0, 63.0, 63.0]], [[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 63.0, 63.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    cells = cells_in_boxes(boxes, mask, 16, 64.0)
    assert cells.shape == (2, 16)
    for b in range(2):
        real = boxes[b, mask[b]].tolist()
        for i in range(16):
            one_hot = torch.nn.functional.one_hot(torch.tensor([i]), 16).float()
            expected = any(attention_in_box(one_hot, [0], [box], 64.0)[0] for box in real)
            assert bool(cells[b, i]) == expected, (b, i)
    assert cells[0].tolist() == [c in (0, 1, 4, 5, 10, 11, 14, 15) for c in range(16)]  # two boxes: top-left and bottom-right
    assert cells[1].tolist() == [c in (5, 9, 13) for c in range(16)]  # the masked box (all) adds nothing


def test_attention_supervision_loss_by_hand():
    from zoo.attention import attention_supervision_loss

    weights = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [0.2, 0.3, 0.5]], requires_grad=True)
    region = torch.tensor([[True, False, True], [False, False, False], [False, True, False]])
    loss = attention_supervision_loss(weights, region)
    assert float(loss) == pytest.approx(-(np.log(0.75) + np.log(0.3)) / 2)  # the empty row adds nothing
    loss.backward()
    assert weights.grad[1].abs().sum() == 0 and weights.grad[0, 1] == 0 and weights.grad[0, 0] < 0
    assert float(attention_supervision_loss(weights, torch.zeros(3, 3, dtype=torch.bool))) == 0.0


def test_attention_supervision_adds_where_to_look_to_the_loss(data):
    """loss = CE + lambda (-log sum_{R^1} p^1 - log sum_{R^K} p^K), with R^1 the named object's cells and
    R^K the answer's, for questions about one object (not a count over several); it trains the hops and
    leaves the answer's loss as it was."""
    from zoo.attention import attention_supervision_loss
    from zoo.encoders import cells_in_boxes

    batch = next(iter(data.train_dataloader()))
    model = built(data, hops=2, attention_supervision=0.5).train()
    torch.manual_seed(1)
    loss = model.training_step(batch, 0)
    torch.manual_seed(1)
    logits, hops = model(batch)
    ce = torch.nn.functional.cross_entropy(logits, batch["answer"])
    one = lambda key: (batch[f"{key}_mask"].sum(-1) == 1)[:, None]  # noqa: E731
    named = cells_in_boxes(batch["named_boxes"], batch["named_boxes_mask"], 4, 64.0) & one("named_boxes")
    target = cells_in_boxes(batch["target_boxes"], batch["target_boxes_mask"], 4, 64.0) & one("target_boxes")
    assert named.any() and target.any() and not target.all()
    assert (batch["target_boxes_mask"].sum(-1) > 1).any()  # a count over several objects, left out
    by_hand = ce + 0.5 * (attention_supervision_loss(hops[:, 0], named) + attention_supervision_loss(hops[:, 1], target))
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)
    loss.backward()
    assert model.hops[0].v.weight.grad.abs().sum() > 0
    unsupervised = built(data, hops=2).train()
    torch.manual_seed(1)
    assert float(unsupervised.training_step(batch, 0)) == pytest.approx(float(ce), rel=1e-5)


def test_supervise_types_teaches_only_the_named_types(data):
    from zoo.attention import attention_supervision_loss
    from zoo.encoders import cells_in_boxes

    batch = next(iter(data.train_dataloader()))
    model = built(data, hops=1, attention_supervision=1.0, supervise_types=["colour", "relation"]).train()
    with torch.no_grad():
        _, hops = model(batch)
        chosen = torch.isin(
            batch["question_type"], torch.tensor([data.question_types.index("colour"), data.question_types.index("relation")])
        )
        assert chosen.any() and not chosen.all()
        region = cells_in_boxes(batch["target_boxes"], batch["target_boxes_mask"], 4, 64.0) & chosen[:, None]
        expected = attention_supervision_loss(hops[:, -1], region)
        assert float(model.where_to_look_loss(batch, hops)) == pytest.approx(float(expected), rel=1e-6)
        everything = built(data, hops=1, attention_supervision=1.0).where_to_look_loss(batch, hops)
        assert float(everything) != pytest.approx(float(expected), rel=1e-3)
    with pytest.raises(ValueError, match=r"supervise_types names \['colours'\], which the data does not have"):
        built(data, attention_supervision=1.0, supervise_types=["colours"]).where_to_look_loss(batch, hops)


def test_attention_supervision_needs_hops_and_boxes(data):
    with pytest.raises(ValueError, match="attention_supervision needs attention: stacked"):
        VisualQuestionAnswerer(attention="none", attention_supervision=1.0)
    with pytest.raises(ValueError, match="attention_supervision must be >= 0"):
        VisualQuestionAnswerer(attention_supervision=-1.0)
    model = built(data, attention_supervision=1.0).train()
    batch = {k: v for k, v in batch_of(data).items() if not k.startswith(("target_boxes", "named_boxes"))}
    with pytest.raises(ValueError, match="gives none: set model.attention_supervision: 0"):
        model.training_step(batch, 0)


def test_grid_offsets_index_every_pair_of_cells():
    from zoo.encoders import grid_offsets

    offsets = grid_offsets(16, 3)  # a 4 x 4 grid, offsets up to 3 cells: a 7 x 7 table
    for i in range(16):
        for j in range(16):
            dr, dc = i // 4 - j // 4, i % 4 - j % 4
            assert offsets[i, j] == (dr + 3) * 7 + (dc + 3)
    clipped = grid_offsets(16, 1)  # farther offsets share the outermost score
    assert clipped[15, 0] == 2 * 3 + 2 and clipped[0, 15] == 0 and clipped[5, 5] == 4


def test_shift_hops_add_the_question_chosen_offset_score(data):
    """e^k_i = content_i + sum_j p^{k-1}_j K^k[offset(i, j)], K^k = W_S u^{k-1}."""
    from zoo.encoders import grid_offsets

    model = built(data, hops=2, shift=1)
    batch = batch_of(data)
    with torch.no_grad():
        logits, hops = model(batch)
        u = model.encode_question(batch["ids"], batch["lengths"])
        v = model.image_grid(batch["images"])
        first, second = model.hops
        p1 = torch.softmax(first.scores(u, v), -1)
        u = (p1[..., None] * v).sum(1) + u
        kernel = model.shifts[0](u)  # (B, 9): offsets in [-1, 1]^2
        offsets = grid_offsets(4, 1)
        bias = torch.stack(
            [torch.stack([sum(p1[b, j] * kernel[b, offsets[i, j]] for j in range(4)) for i in range(4)]) for b in range(8)]
        )
        p2 = torch.softmax(second.scores(u, v) + bias, -1)
        torch.testing.assert_close(hops, torch.stack([p1, p2], 1))
        torch.testing.assert_close(logits, model.classifier((p2[..., None] * v).sum(1) + u))
    assert model.shifts[0].out_features == 9 and not hasattr(built(data, hops=2), "shifts")
    with pytest.raises(ValueError, match="shift must be >= 0"):
        VisualQuestionAnswerer(shift=-1)


def test_baselines(data):
    batch = batch_of(data)
    pooled = built(data, attention="none")
    logits, hops = pooled(batch)
    assert hops is None and logits.shape == (8, len(data.answer_names))
    assert pooled.classifier[0].in_features == 2 * SMALL["feature_dim"]  # [mean_i v_i; u]
    blind = built(data, image=False)
    assert blind.encoder is None and not any("encoder" in k for k in blind.state_dict())
    logits, hops = blind(batch)
    # the question alone: the same answer whatever the image
    shuffled = {**batch, "images": batch["images"].flip(0)}
    torch.testing.assert_close(blind(shuffled)[0], logits)
    with pytest.raises(ValueError, match="attention must be one of"):
        VisualQuestionAnswerer(attention="hard")
    with pytest.raises(ValueError, match="hops must be >= 1"):
        VisualQuestionAnswerer(hops=0)


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("gru", True), ("mingru", False)])
def test_padding_never_changes_an_answer(data, cell, bidirectional):
    model = built(data, cell=cell, bidirectional=bidirectional)
    batch = batch_of(data)
    padded = {**batch, "ids": torch.cat([batch["ids"], torch.zeros(8, 5, dtype=torch.long)], 1)}
    with torch.no_grad():
        torch.testing.assert_close(model(padded)[0], model(batch)[0], atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_part(data):
    model = built(data).train()
    batch = batch_of(data)
    logits, _ = model(batch)
    torch.nn.functional.cross_entropy(logits, batch["answer"]).backward()
    for name, p in model.named_parameters():
        # timm zero-initialises each residual block's last BatchNorm scale: its branch starts silent
        if "bias" in name or name.startswith("encoder.backbone.layer"):
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert next(model.encoder.backbone.parameters()).grad.abs().sum() > 0  # the stem: the answer's loss trains the CNN


def test_fit_and_test_log_accuracy_per_type_and_attention(data):
    model = built(data)
    model.train()
    trainer = L.Trainer(
        max_steps=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data)
    [result] = trainer.test(model, data, verbose=False)
    for key in ("test/acc", "test/acc_colour", "test/acc_relation", "test/acc_count", "test/acc_exist", "test/attn_in_box"):
        assert key in result and 0.0 <= result[key] <= 1.0, key
    # the logged accuracy is the share of right answers, computed again here from predict_step
    predictions = [r for b in data.test_dataloader() for r in model.predict_step(b)]
    truth = [data.answer_names.index(r.answers[0]) for r in data.records["test"]]
    right = np.mean([data.answer_names.index(p["answer"]) == t for p, t in zip(predictions, truth)])
    assert result["test/acc"] == pytest.approx(right, abs=1e-6)


def test_predict_and_its_bad_inputs(data, tmp_path):
    model = built(data)
    image = data.preview("test", 0)
    question = data.records["test"][0].question
    [result] = model.predict((image, question))
    assert result["answer"] in data.answer_names and 0 < result["probability"] <= 1
    assert result["attention"].shape == (2, 4) and result["unknown_words"] == []
    # the same answer as the datamodule's batch for that example (same preprocessing)
    batch = batch_of(data, "test")
    assert model.answer_batch(batch)[0]["answer"] == result["answer"]
    # words never seen: read as <unk>, and named
    [odd] = model.predict((image, "what colour is the purple hexagon?"))
    assert odd["unknown_words"] == ["purple", "hexagon"]
    with pytest.raises(ValueError, match="empty"):
        model.predict((image, "  "))
    with pytest.raises(ValueError, match="no word this model knows"):
        model.predict((image, "¿qué color tiene el círculo?"))
    with pytest.raises(ValueError, match="reads at most 12"):
        model.predict((image, "what " * 13 + "?"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(CorruptImageError, match="bad.png"):
        model.predict((str(bad), question))


def test_pretrained_round_trip(data, tmp_path):
    from zoo.tasks.base import load_pretrained

    model = built(data)
    folder = model.save_pretrained(tmp_path / "vqa")
    again = load_pretrained(folder, expected=VisualQuestionAnswerer)
    batch = batch_of(data)
    with torch.no_grad():
        torch.testing.assert_close(again(batch)[0], model(batch)[0])
    assert again.hparams.question_max_tokens == data.max_question_len and again.hparams.question_types == data.question_types


@pytest.mark.parametrize("key, value, bound", [("hops", 10**6, "tensors"), ("classifier_hidden", 10**12, "weights")])
def test_declared_sizes_are_checked_before_building(tmp_path, key, value, bound):
    """The task declares which init args size it (``sizes``), also those no naming rule finds (``hops``,
    ``classifier_hidden``): a config.json asking for more than the weights hold is refused before building."""
    import json
    import shutil

    from zoo.hub.errors import PretrainedError
    from zoo.hub.registry import model_entry
    from zoo.tasks.base import load_pretrained

    assert VisualQuestionAnswerer.sizes[key] == ("layers" if bound == "tensors" else "width")
    folder = shutil.copytree(model_entry("shapes_vqa_san").package_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["init_args"][key] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        PretrainedError,
        match=rf"config\.json: init arg {key}={value} (cannot fit weights that hold [\d,]+ {bound} in all|is outside \[1, \d+\])",
    ):
        load_pretrained(folder)
