"""VQA v2 on a tiny copy in the real formats: the four official JSON files (loose and as the official
zips), COCO-named JPEGs; records, splits, answer normalization, vocabulary, VQA accuracy, missing and
malformed files, the JSON download from a local server, one training step of SAN."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import lightning as L
import pytest
import torch

import datamodules.vqa_v2 as vqa_v2
from datamodules.download import DataFormatError, DownloadError, MissingDataError
from datamodules.vqa_v2 import VQA_V2_FILES, VQAv2DataModule, normalize_answer
from tests.conftest import REPO
from tests.fixtures import StaticServer, write_jpeg

TRAIN_IMAGES, TEST_IMAGES, ABSENT_TEST_IMAGE = range(1, 7), (101, 102, 103), 104
#: Every training image gets these three questions: (question, answer_type, the ten human answers).
#: Normalized per image: yes 9, 2 7, red 6, blue 3, 3 2, and "red 1", 0, no once each.
PER_IMAGE = [
    ("what colour is the square?", "other", ["Red"] * 5 + ["red."] + ["a red one"] + ["blue"] * 3),
    ("how many dogs are there?", "number", ["Two"] * 4 + ["2"] * 3 + ["three"] * 2 + ["none"]),
    ("is it sunny?", "yes/no", ["yes"] * 9 + ["no"]),
]


def _official(split: str, images, questions) -> dict:
    """The two JSON documents of one official split, with the real keys."""
    qs, anns = [], []
    for image_id in images:
        for k, (question, answer_type, answers) in enumerate(questions):
            qid = image_id * 10 + k
            qs.append({"image_id": image_id, "question": question, "question_id": qid})
            anns.append(
                {
                    "question_type": question.split()[0],
                    "multiple_choice_answer": answers[0],
                    "image_id": image_id,
                    "answer_type": answer_type,
                    "question_id": qid,
                    "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": n + 1} for n, a in enumerate(answers)],
                }
            )
    name_q, _, _ = VQA_V2_FILES[split, "questions"]
    name_a, _, _ = VQA_V2_FILES[split, "annotations"]
    return {
        name_q: {
            "info": {},
            "task_type": "Open-Ended",
            "data_type": "mscoco",
            "data_subtype": split,
            "license": {},
            "questions": qs,
        },
        name_a: {"info": {}, "license": {}, "data_subtype": split, "annotations": anns},
    }


def vqa_json() -> dict:
    test_questions = [("what is on the table?", "other", ["Pizza"] * 4 + ["the pizza"] * 2 + ["food"] * 4)]
    return {
        **_official("train2014", TRAIN_IMAGES, PER_IMAGE),
        **_official("val2014", (*TEST_IMAGES, ABSENT_TEST_IMAGE), test_questions),
    }


def write_images(root: Path) -> None:
    for i in TRAIN_IMAGES:
        write_jpeg(root / "train2014" / f"COCO_train2014_{i:012d}.jpg", (20 * i, 40, 200))
    for i in TEST_IMAGES:  # ABSENT_TEST_IMAGE is listed in the JSON but not on disk
        write_jpeg(root / "val2014" / f"COCO_val2014_{i:012d}.jpg", (200, 20 * (i - 100), 40))


def official_zips(folder: Path) -> dict:
    """The four official zips (one JSON each, at the top level), name -> bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for (_split, _kind), (name, zip_name, _size) in VQA_V2_FILES.items():
        with zipfile.ZipFile(folder / zip_name, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(name, json.dumps(vqa_json()[name]))
        out[zip_name] = (folder / zip_name).read_bytes()
    return out


@pytest.fixture
def vqa_root(tmp_path) -> Path:
    root = tmp_path / "vqa_v2"
    write_images(root)
    for name, doc in vqa_json().items():
        (root / name).write_text(json.dumps(doc))
    return root


def datamodule(root: Path, **kwargs) -> VQAv2DataModule:
    options = dict(encoder="test_resnet", image_size=32, val_images=2, num_answers=6, batch_size=4, seed=3)
    return VQAv2DataModule(root=str(root), **{**options, **kwargs})


def set_up(dm: VQAv2DataModule) -> VQAv2DataModule:
    with pytest.warns(UserWarning, match=r"test: skipped 1 questions whose image is not on disk"):
        dm.setup("fit")
    return dm


def test_normalize_answer_as_the_official_evaluation() -> None:
    cases = {
        "Two": "2",
        "none": "0",
        "the dog.": "dog",
        "A Red one": "red 1",
        "dont know": "don't know",
        "yes!": "yes",
        "3.5": "3.5",
        "1,000": "1000",
        "red, white": "red white",
        "T-shirt": "t shirt",
        "  left\tside\n": "left side",
        "isnt it": "isn't it",
        "Im": "im",
        "an apple": "apple",
    }
    assert {a: normalize_answer(a) for a in cases} == cases


def test_records_splits_and_answers(vqa_root) -> None:
    dm = set_up(datamodule(vqa_root))
    train, val, test = (dm.records[s] for s in ("train", "val", "test"))
    train_ids, val_ids = {r.extra["image_id"] for r in train}, {r.extra["image_id"] for r in val}
    assert len(val_ids) == 2 and train_ids | val_ids == set(TRAIN_IMAGES) and not train_ids & val_ids
    assert (len(train), len(val), len(test)) == (12, 6, 3) and dm.skipped_questions == {"train": 0, "val": 0, "test": 1}
    first = next(r for r in train if r.question_id % 10 == 1)
    assert first.question == "how many dogs are there?" and first.question_type == "number"
    assert first.answers == ["2"] * 7 + ["3"] * 2 + ["0"]
    assert first.image == str(vqa_root / "train2014" / f"COCO_train2014_{first.extra['image_id']:012d}.jpg")
    assert test[0].answers == ["pizza"] * 6 + ["food"] * 4 and test[0].image.endswith("val2014/COCO_val2014_000000000101.jpg")
    assert dm.question_types == ["yes/no", "number", "other"]
    # the held-out images depend only on the seed
    again = set_up(datamodule(vqa_root))
    assert {r.extra["image_id"] for r in again.records["val"]} == val_ids
    assert len({r.extra["image_id"] for r in set_up(datamodule(vqa_root, val_images=0.5)).records["val"]}) == 3


def test_answer_vocabulary_and_vqa_scores_of_a_batch(vqa_root) -> None:
    dm = set_up(datamodule(vqa_root))
    # counts over the 4 training images: yes 36, 2 28, red 24, blue 12, 3 8; then the ties of 4 in first-seen order
    assert dm.answer_names == ["yes", "2", "red", "blue", "3", "red 1"]
    batch = next(iter(dm.train_dataloader()))
    index = {a: k for k, a in enumerate(dm.answer_names)}
    for row, question in enumerate(batch["question"]):
        scores = batch["answer_scores"][row]
        expected = torch.zeros(6)
        if question.startswith("what colour"):  # red 6 humans, blue 3, "red 1" 1 -> min(n/3, 1)
            expected[[index["red"], index["blue"], index["red 1"]]] = torch.tensor([1.0, 1.0, 1 / 3])
            assert batch["answer"][row] == index["red"]
        elif question.startswith("how many"):  # 2: 7 humans, 3: 2, 0: outside the vocabulary
            expected[[index["2"], index["3"]]] = torch.tensor([1.0, 2 / 3])
            assert batch["answer"][row] == index["2"]
        else:  # yes 9, no 1 (outside the vocabulary)
            expected[index["yes"]] = 1.0
        torch.testing.assert_close(scores, expected)
    assert batch["images"].shape[1:] == (3, 32, 32)


def test_official_zips_read_like_the_json(tmp_path, vqa_root) -> None:
    zipped = tmp_path / "zipped"
    write_images(zipped)
    official_zips(zipped)
    dm, plain = set_up(datamodule(zipped)), set_up(datamodule(vqa_root))
    for split in ("train", "val", "test"):
        mine = [(r.question_id, r.question, r.answers, r.question_type) for r in dm.records[split]]
        assert mine == [(r.question_id, r.question, r.answers, r.question_type) for r in plain.records[split]]
    assert (zipped / "v2_Questions_Train_mscoco" / "v2_OpenEnded_mscoco_train2014_questions.json").is_file()


def test_missing_files_say_what_where_and_how_big(tmp_path, vqa_root) -> None:
    (vqa_root / "v2_mscoco_val2014_annotations.json").unlink()
    with pytest.raises(MissingDataError) as err:
        datamodule(vqa_root).prepare_data()
    message = str(err.value)
    assert str(vqa_root / "v2_mscoco_val2014_annotations.json") in message
    assert "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/v2_Annotations_Val_mscoco.zip  (10.5 MB)" in message
    assert "train2014" not in message  # what is there is not listed
    with pytest.raises(MissingDataError) as err:
        datamodule(tmp_path / "empty").prepare_data()
    message = str(err.value)
    assert message.count("wget https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/v2_") == 4
    assert "http://images.cocodataset.org/zips/train2014.zip  (13 GB)" in message
    assert "http://images.cocodataset.org/zips/val2014.zip  (6.2 GB)" in message


def test_malformed_json_names_the_file_and_key(vqa_root) -> None:
    path = vqa_root / "v2_mscoco_train2014_annotations.json"
    doc = json.loads(path.read_text())
    del doc["annotations"][4]["answer_type"]
    path.write_text(json.dumps(doc))
    datamodule(vqa_root).prepare_data()  # checks that the files are there; the JSON is parsed once, at setup
    with pytest.raises(DataFormatError, match=rf"{path}: annotations\[4\] lacks the key 'answer_type'"):
        datamodule(vqa_root).setup("fit")
    path.write_text('{"annotations": [')
    with pytest.raises(DataFormatError, match=rf"{path}: not valid JSON"):
        datamodule(vqa_root).setup("fit")
    questions = vqa_root / "v2_OpenEnded_mscoco_val2014_questions.json"
    path.write_text(json.dumps(vqa_json()[path.name]))
    questions.write_text(json.dumps({"questions": [{"image_id": 101, "question": "why?", "question_id": 7}]}))
    with pytest.raises(
        DataFormatError, match=rf"{questions}: questions\[0\]: question_id 7 has no entry in .*val2014_annotations"
    ):
        datamodule(vqa_root).setup("fit")


def test_download_fetches_the_json_zips_only(tmp_path, monkeypatch) -> None:
    served = tmp_path / "srv"
    zips = official_zips(served)
    sizes = {name: len(data) for name, data in zips.items()}
    server = StaticServer(served)
    try:
        monkeypatch.setattr(vqa_v2, "VQA_V2_URL", server.base + "/")
        for key, (name, zip_name, _size) in list(VQA_V2_FILES.items()):
            monkeypatch.setitem(VQA_V2_FILES, key, (name, zip_name, sizes[zip_name]))
        root = tmp_path / "root"
        write_images(root)
        with pytest.raises(MissingDataError, match="or pass --data.download true"):
            datamodule(root).prepare_data()
        assert server.requests == []  # nothing is fetched unless asked
        dm = set_up(datamodule(root, download=True))
        assert sorted(server.requests) == sorted(f"/{z}" for z in sizes) and len(dm.records["train"]) == 12
        for zip_name, data in zips.items():  # the sha256 of the first download is recorded
            assert (root / f"{zip_name}.sha256").read_text() == f"{hashlib.sha256(data).hexdigest()}  {zip_name}\n"
        set_up(datamodule(root, download=True))
        assert len(server.requests) == 4  # the second run reads what the first fetched
        # a later download that differs from the recorded one is refused and removed
        (root / "v2_Questions_Val_mscoco.zip").unlink()
        shutil.rmtree(root / "v2_Questions_Val_mscoco")
        (root / "v2_Questions_Val_mscoco.zip.sha256").write_text("0" * 64 + "  v2_Questions_Val_mscoco.zip\n")
        with pytest.raises(DownloadError, match="its sha256 differs from the one recorded at the first download"):
            datamodule(root, download=True).prepare_data()
        assert not (root / "v2_Questions_Val_mscoco.zip").exists()
        # a download of another size than the published one is refused and removed
        bad = tmp_path / "bad"
        name, zip_name, size = VQA_V2_FILES["val2014", "questions"]
        monkeypatch.setitem(VQA_V2_FILES, ("val2014", "questions"), (name, zip_name, size + 1))
        with pytest.raises(DownloadError, match=rf"it has {size:,} bytes, the published file {size + 1:,}"):
            datamodule(bad, download=True).prepare_data()
        assert not (bad / zip_name).exists()
    finally:
        server.stop()


def test_one_training_step_of_san(vqa_root, tmp_path) -> None:
    from zoo.tasks.vqa import VisualQuestionAnswerer

    dm = datamodule(vqa_root)
    model = VisualQuestionAnswerer(
        encoder="test_resnet",
        pretrained=False,
        hops=2,
        embedding_dim=8,
        hidden_size=16,
        feature_dim=16,
        attention_dim=16,
        classifier_hidden=16,
        log_images=0,
    )
    trainer = L.Trainer(
        fast_dev_run=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    with pytest.warns(UserWarning, match="skipped 1 questions"):
        trainer.fit(model, datamodule=dm)
    assert model.hparams.answer_names == dm.answer_names and trainer.global_step == 1
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert "val/acc" in trainer.callback_metrics


@pytest.mark.slow
def test_recipe_parses(tmp_path) -> None:
    from tests.test_cli import zoo

    run = zoo(
        "fit", "--config", str(REPO / "recipes" / "vqa_san.yaml"), "--data.root", str(tmp_path), "--print_config", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for line in (
        "class_path: datamodules.vqa_v2.VQAv2DataModule",
        "encoder: resnet152",
        "hops: 2",
        "image_size: 448",
        "num_answers: 3000",
        "trainable: false",
    ):
        assert line in run.stdout, line
