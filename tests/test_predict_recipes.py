"""`zoo predict --config recipes/X.yaml` writes one JSON line per example for EVERY recipe, as a user types it.

One test, parametrized over ``recipes/*.yaml`` (a new recipe is covered automatically). Each run is the
command ``zoo predict --config recipes/X.yaml --trainer.limit_predict_batches 2`` in a subprocess, with
nothing else on the line: the recipe's own sizes, loggers, callbacks, precision and progress bar, on the
checkpoint-less model (the task builds itself from the datamodule at setup). The data is put where the
recipe looks for it, in the datasets' real formats (tests/fixtures.py):

- recipes that name a relative folder (``data/coco``, ``data/ucf101``, ``data/vqa_v2``) find small
  fixtures there, in the run's working directory; UCF101's frames are extracted first with
  ``zoo extract-frames``, as the recipe's header says;
- sha256-pinned downloads (Tiny Shakespeare, Multi30k) find the real files in ``$ZOO_HOME/data``,
  copied from ../shared/data (the test skips where it is absent);
- pretrained ImageNet backbones find timm's Hub files in ``$HF_HOME`` (random weights in the layout
  the Hub's cache uses, read with ``HF_HUB_OFFLINE=1``);
- the generated data sets (python-stdlib, ShapesCaptions, MovingShapes, ShapesVQA) need nothing.

The one exception: IMDB and AG News recipes download an archive that no fixture can stand in for (its
sha256 is pinned), so their command adds ``--data.root FIXTURE``, the offline form their headers give.

The test reads the path from the command's last words (``predictions written to PATH (N lines)``), and
checks that the file is there, holds N lines, each a dict with the task's keys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import yaml

from tests.conftest import shared_data
from tests.fixtures import fake_ucf101, imdb_members, write_ag_news, write_coco, write_tar

pytestmark = pytest.mark.slow  # end-to-end runs of the `zoo` command in subprocesses: `python -m pytest -m slow`

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
WRITTEN = re.compile(r"predictions written to (.+?) \((\d+) lines\)$", re.MULTILINE)

#: What every JSON line of a task holds (the task contract, docs/api.md).
TASK_KEYS: Dict[str, set] = {
    "CharLanguageModel": {"prime", "text"},
    "SequenceClassifier": {"text", "label", "probs"},
    "Seq2Seq": {"source", "translation", "score"},
    "ImageCaptioner": {"image", "caption", "words", "score", "attention"},
    "FrameClassifier": {"video", "probs"},
    "VisualQuestionAnswerer": {"question", "answer", "probability", "top", "attention"},
}


# ---- data per datamodule, where the recipe looks for it; returns the flags it needs (none but two) ----
def _char_corpus(cwd: Path, zoo_home: Path, init: dict) -> List[str]:
    if init.get("corpus", "python-stdlib") == "tinyshakespeare":  # fetch() reuses a copy whose sha256 matches
        (zoo_home / "data").mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data("tinyshakespeare", "input.txt"), zoo_home / "data" / "tinyshakespeare.txt")
    return []


def _multi30k(cwd: Path, zoo_home: Path, init: dict) -> List[str]:
    folder = zoo_home / "data" / "multi30k"
    folder.mkdir(parents=True, exist_ok=True)
    for path in shared_data("multi30k").glob("*.gz"):
        shutil.copy(path, folder / path.name)
    return []


def _imdb(cwd: Path, zoo_home: Path, init: dict) -> List[str]:
    return ["--data.root", str(write_tar(cwd / "aclImdb_v1.tar.gz", imdb_members(per_class=8)))]


def _ag_news(cwd: Path, zoo_home: Path, init: dict) -> List[str]:
    return ["--data.root", str(write_ag_news(cwd / "ag_news_csv"))]


def _coco(cwd: Path, zoo_home: Path, init: dict) -> List[str]:
    write_coco(cwd / init["root"])  # dataset_coco.json in the root: the Hub mirror is not asked
    return []


def _ucf101(cwd: Path, zoo_home: Path, init: dict) -> List[str]:
    root = fake_ucf101(cwd / init["root"])
    _zoo(["extract-frames", str(root / "UCF-101"), str(cwd / init["frames_dir"]), "--fps", "10", "--size", "128"], cwd, zoo_home)
    return []


def _vqa_v2(cwd: Path, zoo_home: Path, init: dict) -> List[str]:
    # the official JSON layout and COCO file names; 20 training images, so that the recipe's
    # val_images (5% of them held out) holds one
    from tests.fixtures import write_jpeg
    from tests.test_vqa_v2 import PER_IMAGE, TEST_IMAGES, _official, vqa_json

    root, train_images = cwd / init["root"], range(1, 21)
    docs = {**vqa_json(), **_official("train2014", train_images, PER_IMAGE)}
    for i in train_images:
        write_jpeg(root / "train2014" / f"COCO_train2014_{i:012d}.jpg", (10 * i, 40, 200))
    for i in TEST_IMAGES:
        write_jpeg(root / "val2014" / f"COCO_val2014_{i:012d}.jpg", (200, 20 * (i - 100), 40))
    for name, doc in docs.items():
        (root / name).write_text(json.dumps(doc))
    return []


def _generated(cwd: Path, zoo_home: Path, init: dict) -> List[str]:
    return []


DATA: Dict[str, Callable[[Path, Path, dict], List[str]]] = {
    "CharCorpusDataModule": _char_corpus,
    "IMDBDataModule": _imdb,
    "AGNewsDataModule": _ag_news,
    "Multi30kDataModule": _multi30k,
    "COCOCaptionsDataModule": _coco,
    "ShapesCaptions": _generated,
    "VideoFramesDataModule": _ucf101,
    "MovingShapesDataModule": _generated,
    "ShapesVQA": _generated,
    "VQAv2DataModule": _vqa_v2,
}


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache folder; :func:`_pretrained_weights` fills it per backbone."""
    return tmp_path_factory.mktemp("hf_home")


def _pretrained_weights(hf_home: Path, name: str) -> None:
    """timm's pretrained file for ``name`` in the Hub cache's layout (``models--timm--<id>/refs/main``,
    ``snapshots/<commit>/model.safetensors``), holding random weights: ``pretrained: true`` then
    loads without network."""
    import timm
    from safetensors.torch import save_file

    model = timm.create_model(name, pretrained=False)
    repo = hf_home / "hub" / ("models--" + model.pretrained_cfg["hf_hub_id"].replace("/", "--"))
    if repo.is_dir():
        return
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(repo / "snapshots" / commit / "model.safetensors"))


def _env(zoo_home: Path, hf_home: Path = None) -> Dict[str, str]:
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        ZOO_HOME=str(zoo_home),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
    )
    if hf_home is not None:
        env["HF_HOME"] = str(hf_home)
    return env


def _zoo(args: List[str], cwd: Path, zoo_home: Path, hf_home: Path = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args],
        cwd=cwd,
        env=_env(zoo_home, hf_home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"zoo {' '.join(args)}:\n" + result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _written(result: subprocess.CompletedProcess, cwd: Path) -> List[dict]:
    """The JSON lines at the path the command's stdout names, checked against the count it gives."""
    said = WRITTEN.findall(result.stdout)
    assert len(said) == 1, "expected one 'predictions written to PATH (N lines)' line:\n" + result.stdout[-2000:]
    path, count = cwd / said[0][0], int(said[0][1])
    assert path.is_file(), f"the command says it wrote {path}, which is absent"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == count > 0, f"{path}: {len(lines)} lines, the command says {count}"
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_zoo_predict_writes_json_lines(recipe: Path, tmp_path: Path, hf_home: Path) -> None:
    pytest.importorskip("av", reason="PyAV writes the UCF101 fixture videos")
    config = yaml.safe_load(recipe.read_text())
    model_class = config["model"]["class_path"].rsplit(".", 1)[1]
    data_class = config["data"]["class_path"].rsplit(".", 1)[1]
    assert data_class in DATA, f"{recipe.name}: put a small fixture for {data_class} where the recipe looks (this test)"
    assert model_class in TASK_KEYS, f"{recipe.name}: add the JSON keys of {model_class} to this test"
    model_init = config["model"].get("init_args") or {}
    if model_init.get("pretrained"):
        _pretrained_weights(hf_home, model_init["encoder"])
    cwd, zoo_home = tmp_path / "run", tmp_path / "zoo_home"
    cwd.mkdir()
    data_flags = DATA[data_class](cwd, zoo_home, config["data"].get("init_args") or {})
    result = _zoo(
        ["predict", "--config", str(recipe), "--trainer.limit_predict_batches", "2", *data_flags], cwd, zoo_home, hf_home
    )
    for item in _written(result, cwd):
        assert isinstance(item, dict), str(item)[:200]
        missing = TASK_KEYS[model_class] - set(item)
        assert not missing, f"{recipe.name}: a line lacks {sorted(missing)}: {json.dumps(item)[:300]}"


def test_a_writer_the_user_gives_replaces_the_default(tmp_path: Path) -> None:
    """``--trainer.callbacks+ PredictionWriter`` on a recipe without one: the user's file, and no second
    writer (no ``predictions/char_lm.jsonl``)."""
    output = tmp_path / "mine.jsonl"
    result = _zoo(
        [
            "predict",
            "--config",
            str(REPO / "recipes" / "char_lm.yaml"),
            "--trainer.limit_predict_batches",
            "1",
            "--data.max_chars",
            "20000",
            "--trainer.callbacks+",
            "zoo.callbacks.PredictionWriter",
            "--trainer.callbacks.output",
            str(output),
        ],
        tmp_path,
        tmp_path / "zoo_home",
    )
    assert _written(result, tmp_path) and output.is_file()
    assert not (tmp_path / "predictions").exists()
