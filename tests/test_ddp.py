"""DDP equals one process: 2-process CPU DDP (gloo, ``ddp_spawn``: plain ``ddp`` would re-launch pytest) with
``batch_size`` B/2 per rank ends with the same parameters (1e-5) as one process with B after N steps, for
the classifier, the translator and the frame classifier. Why it holds: the samplers give rank ``r`` items
``r, r + 2, ...`` of the one process's batch (datamodules.loaders.BucketBatchSampler), and the losses are
means over the global batch's items (TaskModule.global_mean) however unevenly tokens fall on the ranks.
Dropout is off: its masks are drawn per rank and cannot match one process's."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict

import lightning as L
import pytest
import torch

from tests.fixtures import fixture_files, imdb_members, write_files, write_tar

pytestmark = pytest.mark.slow  # each test spawns two training processes
STEPS = 5


def fit_parameters(
    make_model: Callable[[], L.LightningModule], data: L.LightningDataModule, devices: int, root: Path
) -> Dict[str, torch.Tensor]:
    """The parameters after :data:`STEPS` steps from the same initial weights (seed 0), on ``devices``
    CPU processes (rank 0's copy: DDP keeps them equal)."""
    torch.manual_seed(0)
    model = make_model()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        max_steps=STEPS,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(model, data)  # ddp_spawn loads rank 0's final weights back into `model`
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_ddp_equals_one_process(make_model, make_data: Callable[[int], L.LightningDataModule], tmp_path: Path) -> None:
    one = fit_parameters(make_model, make_data(8), 1, tmp_path / "one")
    two = fit_parameters(make_model, make_data(4), 2, tmp_path / "two")
    torch.manual_seed(0)
    start = dict(make_model().named_parameters())
    assert set(one) == set(two)
    assert all(not torch.equal(one[k], start[k]) for k in one if one[k].requires_grad and "embed" not in k)  # it trained
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-5, rtol=0, msg=lambda m: f"{name}: {m}")


def test_classifier_ddp_equals_one_process(tmp_path):
    from datamodules.imdb import IMDBDataModule
    from zoo.tasks.classifier import SequenceClassifier

    archive = write_tar(tmp_path / "aclImdb_v1.tar.gz", imdb_members(per_class=21))  # 38 training reviews

    def data(batch_size: int) -> IMDBDataModule:
        dm = IMDBDataModule(root=str(archive), cache_dir=str(tmp_path / "cache"), batch_size=batch_size, min_frequency=1)
        dm.setup()
        return dm

    ref = data(8)
    assert len(ref.datasets["train"]) % 8 == 6  # STEPS reach the last batch, smaller: 3 and 3 per rank

    def model() -> SequenceClassifier:
        return SequenceClassifier(
            ref.tokenizer_json,
            ref.label_names,
            embedding_dim=16,
            hidden_size=16,
            dropout=0.0,
            embedding_dropout=0.0,
            warmup_steps=2,
        )

    assert_ddp_equals_one_process(model, data, tmp_path)


def test_translator_ddp_equals_one_process(tmp_path):
    """Token-level loss: the ranks' batches hold different numbers of target tokens."""
    from datamodules.multi30k import Multi30kDataModule
    from zoo.tasks.seq2seq import Seq2Seq

    root = write_files(tmp_path / "multi30k", fixture_files(n_train=40))

    def data(batch_size: int) -> Multi30kDataModule:
        dm = Multi30kDataModule(root=str(root), vocab_size=120, batch_size=batch_size, cache_dir=str(tmp_path / "cache"))
        dm.setup()
        return dm

    ref = data(8)
    batch = next(iter(data(4).train_dataloader()))

    def model() -> Seq2Seq:
        return Seq2Seq(
            ref.source_tokenizer_json,
            ref.target_tokenizer_json,
            embedding_dim=16,
            hidden_size=16,
            dropout=0.0,
            embedding_dropout=0.0,
            warmup_steps=2,
            log_alignments=0,
        )

    assert batch["tgt"].shape[0] == 4
    assert_ddp_equals_one_process(model, data, tmp_path)


def test_frame_classifier_ddp_equals_one_process(tmp_path):
    """On per-frame features (a CNN backbone's BatchNorm normalises per rank: one process's statistics need
    ``sync_batchnorm``, which torch runs on GPUs only)."""
    from datamodules.moving_shapes import MovingShapesDataModule
    from datamodules.video_frames import VideoFramesDataModule
    from zoo.tasks.frame_classifier import FrameClassifier

    shapes = MovingShapesDataModule(memory=3, num_train=21, num_val=4, num_test=4, batch_size=4)
    shapes.setup()
    torch.manual_seed(0)
    backbone = FrameClassifier(label_names=shapes.label_names, encoder="zoo_frame_cnn", hidden_size=8, frame_size=32).eval()
    out = backbone.save_features({"train": shapes.datasets["train"], "val": shapes.datasets["val"]}, tmp_path / "features")

    def data(batch_size: int) -> VideoFramesDataModule:
        dm = VideoFramesDataModule(
            str(out),
            labels=str(out / "labels.csv"),
            num_frames=32,
            batch_size=batch_size,
            train_sampling="start",
            eval_sampling="start",
        )
        dm.setup()
        return dm

    ref = data(8)

    def model() -> FrameClassifier:
        return FrameClassifier(
            label_names=ref.label_names, encoder=None, feature_dim=ref.feature_dim, hidden_size=8, warmup_steps=2
        )

    assert_ddp_equals_one_process(model, data, tmp_path)


def test_char_lm_ddp_equals_one_process(tmp_path, tiny_corpus):
    """Each rank reads its own streams, but they are the one process's streams: the text is cut into
    ``R * batch_size`` streams either way and rank ``r`` holds rows ``r * batch_size, ...``; with equal
    characters per rank the ranks' mean losses average to the one process's."""
    from datamodules.char_corpus import CharCorpusDataModule
    from zoo.tasks.language_model import CharLanguageModel

    def data(batch_size: int) -> CharCorpusDataModule:
        return CharCorpusDataModule(corpus=str(tiny_corpus), batch_size=batch_size, seq_len=16, max_chars=4000)

    ref = data(8)
    ref.setup()

    def model() -> CharLanguageModel:
        return CharLanguageModel(ref.vocab, embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.0, warmup_steps=2)

    assert_ddp_equals_one_process(model, data, tmp_path)
