"""`zoo predict --config recipes/X.yaml` writes one JSON line per example for EVERY recipe.

One test, parametrized over ``recipes/*.yaml`` (a new recipe is covered automatically). Each run is the
real command in a subprocess, on the checkpoint-less model (the task builds itself from the datamodule
at setup), with the data pointed at small fixtures written in tmp_path in the datasets' real formats
(tests/fixtures.py): the aclImdb tarball and folder, AG News csv files, Multi30k's gzip'd raw files,
COCO's Karpathy json with JPEGs, UCF101's lists with tiny PyAV videos, a character corpus; the
offline recipes (python-stdlib, ShapesCaptions, MovingShapes) run at small sizes. Models are tiny,
loggers off, two predict batches, and the recipe's callbacks replaced by one
``zoo.callbacks.PredictionWriter``; the test checks every line parses to a dict with the task's keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import yaml

from tests.fixtures import (
    fake_ucf101, fixture_files, imdb_members, write_ag_news, write_coco, write_corpus, write_files, write_folder, write_tar,
)

pytestmark = pytest.mark.slow  # end-to-end runs of the `zoo` command in subprocesses: `python -m pytest -m slow`

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))

#: What every JSON line of a task holds (the task contract, docs/api.md).
TASK_KEYS: Dict[str, set] = {
    "CharLanguageModel": {"prime", "text"},
    "SequenceClassifier": {"text", "label", "probs"},
    "Seq2Seq": {"source", "translation", "score"},
    "ImageCaptioner": {"image", "caption", "words", "score", "attention"},
    "FrameClassifier": {"video", "probs"},
    "VisualQuestionAnswerer": {"question", "answer", "probability", "top", "attention"},
}

#: Tiny widths per task (shared argument names only).
MODEL_OVERRIDES: Dict[str, Dict[str, object]] = {
    "CharLanguageModel": {"embedding_dim": 8, "hidden_size": 16},
    "SequenceClassifier": {"embedding_dim": 8, "hidden_size": 8},
    "Seq2Seq": {"embedding_dim": 8, "hidden_size": 8},
    "ImageCaptioner": {"encoder": "test_resnet", "pretrained": False, "feature_dim": 8, "embedding_dim": 8,
                       "hidden_size": 16, "attention_dim": 8, "beam_size": 2, "log_images": 0},
    "FrameClassifier": {"encoder": "zoo_frame_cnn", "pretrained": False, "trainable": True, "hidden_size": 8},
    "VisualQuestionAnswerer": {"encoder": "test_resnet", "pretrained": False, "trainable": True, "embedding_dim": 8,
                               "hidden_size": 16, "feature_dim": 16, "attention_dim": 8, "classifier_hidden": 16, "log_images": 0},
}


# ---- data per datamodule: fixture in the real format + small sizes ----------------------------------
def _char_corpus(tmp: Path, recipe: str, init: dict) -> dict:
    if init.get("corpus", "python-stdlib") == "python-stdlib":  # offline: the running Python's stdlib, small
        return {"max_chars": 20_000, "batch_size": 4, "seq_len": 32}
    return {"corpus": str(write_corpus(tmp / "corpus.txt")), "max_chars": None, "batch_size": 4, "seq_len": 32}


def _imdb(tmp: Path, recipe: str, init: dict) -> dict:
    members = imdb_members(per_class=8)
    tmp.mkdir(parents=True, exist_ok=True)
    # One recipe reads the official tarball layout, the other an extracted folder: both real forms.
    root = write_tar(tmp / "aclImdb_v1.tar.gz", members) if "gru" in recipe else write_folder(tmp / "imdb", members)
    return {"root": str(root), "vocab_size": 200, "min_frequency": 1, "max_tokens": 64, "batch_size": 4}


def _ag_news(tmp: Path, recipe: str, init: dict) -> dict:
    return {"root": str(write_ag_news(tmp / "ag_news_csv")), "vocab_size": 200, "min_frequency": 1, "batch_size": 4}


def _multi30k(tmp: Path, recipe: str, init: dict) -> dict:
    root = write_files(tmp / "multi30k", fixture_files(n_train=60, n_val=8, n_test=8))
    return {"root": str(root), "vocab_size": 120, "min_frequency": 1, "batch_size": 4}


def _coco(tmp: Path, recipe: str, init: dict) -> dict:
    return {"root": str(write_coco(tmp / "coco")), "karpathy_hub": None, "encoder": "test_resnet", "image_size": 64,
            "vocab_size": 100, "min_frequency": 1, "batch_size": 2, "num_workers": 0}


def _shapes(tmp: Path, recipe: str, init: dict) -> dict:
    return {"n_train": 16, "n_val": 4, "n_test": 8, "image_size": 64, "layout": 2, "batch_size": 4}


def _ucf101(tmp: Path, recipe: str, init: dict) -> dict:
    return {"root": str(fake_ucf101(tmp / "ucf101")), "layout": "ucf101", "frames_dir": None, "download": False,
            "num_frames": 4, "stride": 1, "size": 32, "batch_size": 2, "num_workers": 0}


def _moving_shapes(tmp: Path, recipe: str, init: dict) -> dict:
    return {"memory": 3, "num_train": 4, "num_val": 4, "num_test": 4, "batch_size": 2}


def _shapes_vqa(tmp: Path, recipe: str, init: dict) -> dict:
    return {"n_train": 16, "n_val": 4, "n_test": 8, "image_size": 64, "layout": 2, "max_objects": 3, "encoder": "test_resnet",
            "batch_size": 4}


def _vqa_v2(tmp: Path, recipe: str, init: dict) -> dict:
    from tests.test_vqa_v2 import vqa_json, write_images  # the official JSON layout and COCO file names

    root = tmp / "vqa_v2"
    write_images(root)
    for name, doc in vqa_json().items():
        (root / name).write_text(json.dumps(doc))
    return {"root": str(root), "download": False, "encoder": "test_resnet", "image_size": 32, "val_images": 2,
            "num_answers": 6, "batch_size": 4, "num_workers": 0}


DATA: Dict[str, Callable[[Path, str, dict], dict]] = {
    "CharCorpusDataModule": _char_corpus,
    "IMDBDataModule": _imdb,
    "AGNewsDataModule": _ag_news,
    "Multi30kDataModule": _multi30k,
    "COCOCaptionsDataModule": _coco,
    "ShapesCaptions": _shapes,
    "VideoFramesDataModule": _ucf101,
    "MovingShapesDataModule": _moving_shapes,
    "ShapesVQA": _shapes_vqa,
    "VQAv2DataModule": _vqa_v2,
}


def _flags(prefix: str, values: Dict[str, object]) -> List[str]:
    """``--prefix.key value`` pairs; values as YAML (``null``, ``false``, numbers, strings)."""
    out: List[str] = []
    for key, value in values.items():
        out += [f"--{prefix}.{key}", "null" if value is None else json.dumps(value) if not isinstance(value, str) else value]
    return out


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_zoo_predict_writes_json_lines(recipe: Path, tmp_path: Path) -> None:
    pytest.importorskip("av", reason="PyAV writes the UCF101 fixture videos")
    config = yaml.safe_load(recipe.read_text())
    model_class = config["model"]["class_path"].rsplit(".", 1)[1]
    data_class = config["data"]["class_path"].rsplit(".", 1)[1]
    assert data_class in DATA, f"{recipe.name}: add a small fixture for {data_class} to this test"
    assert model_class in MODEL_OVERRIDES, f"{recipe.name}: add tiny widths and the JSON keys of {model_class} to this test"
    data = DATA[data_class](tmp_path / "data", recipe.stem, config["data"].get("init_args") or {})
    output = tmp_path / "predictions.jsonl"
    writer = [{"class_path": "zoo.callbacks.PredictionWriter", "init_args": {"output": str(output)}}]
    args = [
        sys.executable, "-m", "zoo.cli", "predict", "--config", str(recipe),
        "--trainer.logger", "false", "--trainer.callbacks", json.dumps(writer), "--trainer.limit_predict_batches", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.precision", "32-true",
        "--trainer.enable_progress_bar", "false",
        *_flags("model.init_args", MODEL_OVERRIDES[model_class]), *_flags("data.init_args", data),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), ZOO_HOME=str(tmp_path / "zoo_home"), WANDB_MODE="offline",
               WANDB_SILENT="true", OMP_NUM_THREADS="1")
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert output.is_file(), f"no {output}: " + result.stdout[-2000:]
    lines = output.read_text(encoding="utf-8").splitlines()
    assert lines, f"{output} is empty"
    for line in lines:
        item = json.loads(line)
        assert isinstance(item, dict), line[:200]
        missing = TASK_KEYS[model_class] - set(item)
        assert not missing, f"{recipe.name}: a line lacks {sorted(missing)}: {line[:300]}"
