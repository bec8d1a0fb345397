"""The optimisation every task shares (zoo/optim.py, TaskModule.configure_optimizers): the warm-up then
cosine schedule at given steps, min_lr_ratio, and which parameters AdamW decays."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from tests.test_captioner import shapes_batch, tiny_model  # noqa: F401  (shapes_batch is a fixture)
from tests.test_classifier import tiny_datamodule, tokenizer_json  # noqa: F401  (tokenizer_json is a fixture)
from zoo.optim import warmup_cosine
from zoo.tasks.base import decay_groups
from zoo.tasks.classifier import SequenceClassifier


def rates(warmup: int, total, min_ratio: float, steps: int) -> list:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    schedule = warmup_cosine(optimizer, warmup, total, min_ratio)
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return seen


def test_warmup_then_cosine_at_given_steps():
    lr = rates(warmup=4, total=14, min_ratio=0.1, steps=18)
    # warm-up: (step + 1) / 4 of the rate, reaching it at step 3
    assert lr[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    # then 0.1 + 0.9 * (1 + cos(pi * progress)) / 2 over steps 4..14: full at 4, halfway (0.55) at 9, 0.1 from 14 on
    assert lr[4] == pytest.approx(2.0) and lr[9] == pytest.approx(2.0 * 0.55)
    assert lr[6] == pytest.approx(2.0 * (0.1 + 0.45 * (1 + math.cos(math.pi * 0.2))))
    assert lr[14:] == pytest.approx([0.2] * 4)
    assert all(a >= b for a, b in zip(lr[3:], lr[4:]))  # never rises after the warm-up


def test_min_ratio_and_runs_bounded_only_by_time():
    assert rates(warmup=0, total=10, min_ratio=0.25, steps=12)[10:] == pytest.approx([0.5, 0.5])
    assert rates(warmup=0, total=10, min_ratio=0.0, steps=11)[10] == pytest.approx(0.0)
    assert rates(warmup=2, total=None, min_ratio=0.1, steps=6) == pytest.approx([1.0, 2.0, 2.0, 2.0, 2.0, 2.0])


class RecordRates(L.Callback):
    def __init__(self) -> None:
        self.rates = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append([group["lr"] for group in trainer.optimizers[0].param_groups])


def test_configure_optimizers_follows_the_hyper_parameters(tokenizer_json, tmp_path):  # noqa: F811
    """Through a real fit: lr, warmup_steps and min_lr_ratio from the hyper-parameters, the cosine's end
    at the trainer's last step, AdamW with decay on the matrices only."""
    torch.manual_seed(0)
    model = SequenceClassifier(embedding_dim=8, hidden_size=6, lr=0.01, warmup_steps=2, min_lr_ratio=0.2, weight_decay=0.05)
    record = RecordRates()
    trainer = L.Trainer(
        max_steps=8,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        callbacks=[record],
    )
    trainer.fit(model, tiny_datamodule(tokenizer_json, batch_size=4))
    expected = [0.005, 0.01] + [0.01 * (0.2 + 0.4 * (1 + math.cos(math.pi * (s - 2) / 6))) for s in range(2, 8)]
    assert [r[0] for r in record.rates] == pytest.approx(expected)
    assert all(len(set(r)) == 1 for r in record.rates)  # every group on the same schedule
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    exempt = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed | exempt == set(names) and not decayed & exempt  # every parameter once
    assert {names[i] for i in exempt} == {n for n, p in model.named_parameters() if p.dim() < 2}
    assert any("bias" in names[i] for i in exempt) and any("embed" in names[i] for i in decayed)


def test_decay_groups_exempt_vectors_only():
    layer, norm, embed = torch.nn.Linear(3, 2), torch.nn.LayerNorm(2), torch.nn.Embedding(5, 2)
    params = [layer.weight, layer.bias, norm.weight, norm.bias, embed.weight]
    decayed, exempt = decay_groups(params, 0.1)
    assert decayed["weight_decay"] == 0.1 and exempt["weight_decay"] == 0.0
    # matrices decay (an embedding table too: the code decays by shape); biases and norms never do
    assert [id(p) for p in decayed["params"]] == [id(layer.weight), id(embed.weight)]
    assert [id(p) for p in exempt["params"]] == [id(layer.bias), id(norm.weight), id(norm.bias)]


def test_captioner_groups_hold_each_parameter_once_and_the_encoder_at_its_rate(shapes_batch):  # noqa: F811
    """Regression for the captioner's copy of the split (fixed in e28b94b): with a trainable encoder, its
    parameters sit in one group at encoder_lr, the rest in the shared decay groups, none twice."""
    dm, _ = shapes_batch
    model = tiny_model("soft", dm.tokenizer_json, trainable=True, encoder_lr=1e-5, weight_decay=0.02)
    groups = model.param_groups()
    encoder = {id(p) for p in model.encoder.parameters()}
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    (encoder_group,) = [g for g in groups if g.get("lr") == 1e-5]
    assert {id(p) for p in encoder_group["params"]} == encoder
    rest = [g for g in groups if g is not encoder_group]
    assert all(p.dim() >= 2 for p in rest[0]["params"]) and rest[0]["weight_decay"] == 0.02
    assert all(p.dim() < 2 for p in rest[1]["params"]) and rest[1]["weight_decay"] == 0.0
