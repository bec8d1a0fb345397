"""A real offline W&B run (not fast_dev_run's placeholder logger): a few training steps with
validation write the metrics and the figures (the translator's alignments, the captioner's attention
over the image) into the run's files, so a bug in the figure or logging code fails here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_captioner import tiny_model, tiny_shapes
from tests.test_seq2seq import toy_multi30k
from zoo.tracking import offline_history as history
from zoo.tracking import records

pytestmark = pytest.mark.slow  # W&B's service process and two short fits: ~100 s at load 10 on 2 shared cores (AMD EPYC)


def offline_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model, datamodule, **trainer_args) -> Path:
    """Fit with a WandbLogger in offline mode under tmp_path; the run's folder, after the run finished."""
    import lightning as L
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    logger = WandbLogger(project="zoo-tests", save_dir=str(tmp_path), offline=True)
    trainer = L.Trainer(
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        **trainer_args,
    )
    trainer.fit(model, datamodule)
    run_dir = Path(logger.experiment.dir).parent  # .../wandb/offline-run-<time>-<id>/files -> the run folder
    logger.experiment.finish()
    return run_dir


def last(rows: List[Dict[str, Any]], key: str) -> Dict[str, Any]:
    found = [row for row in rows if any(k == key or k.startswith(key + "/") for k in row)]
    assert found, f"{key} was never logged; logged: {sorted({k for row in rows for k in row})}"
    return found[-1]


def images(run_dir: Path, row: Dict[str, Any], key: str) -> List[np.ndarray]:
    """The pictures of one logged ``key``, in the order they were logged."""
    assert row[f"{key}/_type"] == "images/separated"
    return [np.asarray(Image.open(run_dir / "files" / name).convert("RGB")) for name in row[f"{key}/filenames"]]


def test_translator_logs_metrics_and_its_alignment_figures(tmp_path, monkeypatch):
    """val/bleu, val/ppl = exp(val/loss) and train/loss are in the run; the alignments logged at the last
    validation are exactly the figures of the first validation sentences' greedy translations."""
    from zoo.tasks.seq2seq import Seq2Seq
    from zoo.viz import alignment_figure, figure_array

    dm = toy_multi30k(tmp_path, 64, 8, 4, seed=20, vocab_size=60)
    torch.manual_seed(0)
    model = Seq2Seq(
        embedding_dim=8,
        hidden_size=8,
        attention="general",
        dropout=0.0,
        lr=1e-2,
        warmup_steps=0,
        log_alignments=2,
        max_len_a=1.0,
        max_len_b=2,
    )
    run_dir = offline_fit(
        tmp_path, monkeypatch, model, dm, max_steps=4, val_check_interval=2, limit_val_batches=1, log_every_n_steps=1
    )
    rows = history(run_dir)
    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert len(records(data[:-3])) == len(records(data)) - 1  # a half-written last record is not read (nor raised)
    assert {"train/loss", "val/bleu", "val/ppl", "val/loss"} <= {k for row in rows for k in row}
    metrics = last(rows, "val/ppl")
    assert metrics["val/ppl"] == pytest.approx(math.exp(metrics["val/loss"]), rel=1e-4)
    assert len([row for row in rows if "val/alignment/_type" in row]) == 2  # one per validation, none in the sanity check

    batch = next(iter(dm.val_dataloader()))
    model.eval()
    results = model._results(batch["src"], batch["src_lengths"], model.search(batch["src"], batch["src_lengths"], 1))[:2]
    logged = last(rows, "val/alignment")
    assert logged["val/alignment/captions"] == [r["translation"] for r in results]
    for picture, r in zip(images(run_dir, logged, "val/alignment"), results, strict=True):
        expected = figure_array(alignment_figure(r["source_tokens"], r["target_tokens"], r["attention"]))
        assert np.array_equal(picture, expected)


def test_captioner_logs_metrics_and_its_attention_figures(tmp_path, monkeypatch, zoo_home_env):
    """The captioner's attention figures (the image, then one panel per word) are in the run, each of the
    size its spec gives: 240 x 260 pixels per panel, at most 5 panels a row."""
    dm = tiny_shapes(n_train=32, n_val=8, batch_size=8)
    dm.setup()
    model = tiny_model("soft", dm.tokenizer_json, log_images=2, lr=1e-2, warmup_steps=0)
    run_dir = offline_fit(
        tmp_path, monkeypatch, model, dm, max_steps=4, val_check_interval=2, limit_val_batches=1, log_every_n_steps=1
    )
    rows = history(run_dir)
    assert {"train/loss", "val/bleu4", "val/cider"} <= {k for row in rows for k in row}
    logged = last(rows, "val/attention")
    pictures = images(run_dir, logged, "val/attention")
    assert len(pictures) == 2
    for picture, caption in zip(pictures, logged["val/attention/captions"], strict=True):
        panels = 1 + len(caption.split())
        columns, rows_ = min(5, panels), math.ceil(panels / 5)
        assert picture.shape == (260 * rows_, 240 * columns, 3), caption
        assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50  # an image, not a blank canvas


def test_vqa_logs_accuracy_per_type_and_its_hop_figures(tmp_path, monkeypatch, zoo_home_env):
    """The VQA model logs its accuracy per question type and, during validation, the figure of every
    attention hop (the image, then one panel per hop; the question and answer as the caption)."""
    from datamodules.shapes_vqa import ShapesVQA
    from zoo.tasks.vqa import VisualQuestionAnswerer

    dm = ShapesVQA(n_train=32, n_val=8, n_test=8, image_size=64, layout=2, max_objects=3, batch_size=8, encoder="test_resnet")
    model = VisualQuestionAnswerer(
        encoder="test_resnet",
        embedding_dim=8,
        hidden_size=16,
        feature_dim=16,
        attention_dim=8,
        classifier_hidden=16,
        hops=2,
        log_images=2,
        warmup_steps=0,
    )
    run_dir = offline_fit(
        tmp_path, monkeypatch, model, dm, max_steps=4, val_check_interval=2, limit_val_batches=1, log_every_n_steps=1
    )
    rows = history(run_dir)
    assert {"train/loss", "val/acc", "val/acc_relation", "val/acc_count", "val/attn_in_box"} <= {k for row in rows for k in row}
    logged = last(rows, "val/attention")
    pictures = images(run_dir, logged, "val/attention")
    assert len(pictures) == 2
    questions = [r.question for r in dm.records["val"][:2]]
    for picture, caption, question in zip(pictures, logged["val/attention/captions"], questions, strict=True):
        assert caption.startswith(question + " -> ") and caption.split(" -> ")[1] in dm.answer_names
        assert picture.shape == (260, 240 * 3, 3)  # the image and two hops
        assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50
