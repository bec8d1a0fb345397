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

SMALL = dict(encoder="test_resnet", pretrained=False, embedding_dim=8, hidden_size=16, feature_dim=16, feature_layers=1,
             attention_dim=8, classifier_hidden=16, dropout=0.0, log_images=0)


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
            h_A = torch.tanh(layer.memory_proj(v) + layer.query_proj(u)[:, None])     # tanh(W_I v_i + W_Q u + b_A)
            p = torch.softmax(layer.v(h_A).squeeze(-1), -1)                         # softmax_i(w_P^T h_A,i)
            torch.testing.assert_close(hops[:, k], p)
            u = (p[..., None] * v).sum(1) + u                                        # u^k = sum_i p_i v_i + u^{k-1}
        torch.testing.assert_close(logits, model.classifier(u))
    assert hops.shape == (8, 3, 4) and torch.allclose(hops.sum(-1), torch.ones(8, 3))


def test_relative_hops_score_places_from_where_the_hop_before_looked(data):
    model = built(data, hops=2, relative=True)
    batch = batch_of(data)
    with torch.no_grad():
        logits, hops = model(batch)
        u = model.encode_question(batch["ids"], batch["lengths"])
        v = model.image_grid(batch["images"])
        places = grid_coordinates(v.shape[1], v)                                         # (x_i, y_i)
        first, second = model.hops
        p1 = torch.softmax(first.v(torch.tanh(first.memory_proj(v) + first.query_proj(u)[:, None])).squeeze(-1), -1)
        u = (p1[..., None] * v).sum(1) + u
        looked = (p1[..., None] * places).sum(1, keepdim=True)                           # c^1 = sum_i p^1_i (x_i, y_i)
        keys = torch.cat([v, places - looked], -1)                                       # [v_i; (x_i, y_i) - c^1]
        p2 = torch.softmax(second.v(torch.tanh(second.memory_proj(keys) + second.query_proj(u)[:, None])).squeeze(-1), -1)
        torch.testing.assert_close(hops, torch.stack([p1, p2], 1))
        torch.testing.assert_close(logits, model.classifier((p2[..., None] * v).sum(1) + u))
    assert first.memory_size == SMALL["feature_dim"] and second.memory_size == SMALL["feature_dim"] + 2
    assert built(data, hops=2).hops[1].memory_size == SMALL["feature_dim"]


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
    trainer = L.Trainer(max_steps=2, limit_val_batches=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
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
