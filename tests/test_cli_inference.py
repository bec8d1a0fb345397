"""Every inference command, run as a user runs it (a subprocess), once from a pretrained folder and once
from ``--ckpt``, with the flags they all share (``--json``, ``--output``, ``--device cpu``,
``--beam_size`` where they decode) and inputs on stdin. The models are tiny and trained for one step
(``fast_dev_run``) on in-memory fixtures in their real formats, so the datamodule hands each task
its vocabulary and labels the way a recipe does; both loading paths must give the same answers."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # end-to-end runs of the `zoo` command in subprocesses: `python -m pytest -m slow`


def zoo(*args: str, cwd: Path, stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "offline",
        "ZOO_HOME": str(cwd / "zoo_home"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("ZOO_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


def ok(run: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def fit_and_save(model, datamodule, folder: Path):
    """One training step, then the model as a pretrained folder and as a Lightning checkpoint."""
    import lightning as L

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    trainer.fit(model, datamodule)
    ckpt = folder / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    pretrained = Path(model.save_pretrained(folder / "pretrained"))
    return pretrained, ckpt


# ---- character language model: sample, visualize -------------------------------------------------
@pytest.fixture(scope="module")
def char_lm(tmp_path_factory):
    from datamodules.char_corpus import CharCorpusDataModule
    from zoo.tasks.language_model import CharLanguageModel

    folder = tmp_path_factory.mktemp("char_lm")
    corpus = folder / "corpus.txt"
    corpus.write_text(Path(json.__file__).read_text(encoding="utf-8") * 2, encoding="utf-8")  # code: strings, indents
    model = CharLanguageModel(cell="lstm", embedding_dim=8, hidden_size=12, dropout=0.0)
    return fit_and_save(model, CharCorpusDataModule(corpus=str(corpus), batch_size=4, seq_len=32), folder)


def test_sample(char_lm, tmp_path):
    folder, ckpt = char_lm
    out = tmp_path / "out" / "sample.jsonl"
    ok(
        zoo(
            "sample",
            str(folder),
            "--prime",
            "def ",
            "--length",
            "30",
            "--seed",
            "3",
            "--temperature",
            "0.5",
            "--json",
            "--output",
            str(out),
            "--device",
            "cpu",
            cwd=tmp_path,
        )
    )
    [record] = json_lines(out.read_text(encoding="utf-8"))
    assert record["prime"] == "def " and record["text"].startswith("def ") and len(record["text"]) == 34
    # --ckpt: every positional is a prime; '-' reads the primes from stdin, one per line
    run = ok(
        zoo(
            "sample",
            "--ckpt",
            str(ckpt),
            "-",
            "--length",
            "30",
            "--seed",
            "3",
            "--temperature",
            "0.5",
            "--json",
            "--device",
            "cpu",
            cwd=tmp_path,
            stdin="def \nclass \n",
        )
    )
    records = json_lines(run.stdout)
    assert [r["prime"] for r in records] == ["def ", "class "]
    assert records[0].pop("line") == 1  # a record from stdin names its line; one from an argument does not
    assert records[0] == record  # the checkpoint and the folder hold the same model
    text = ok(zoo("sample", "--ckpt", str(ckpt), "--prime", "import", "--length", "5", "--top_k", "3", cwd=tmp_path)).stdout
    assert text.startswith("import") and len(text.rstrip("\n")) >= 6


def test_visualize(char_lm, tmp_path):
    folder, ckpt = char_lm
    text = tmp_path / "code.py"
    text.write_text(Path(json.decoder.__file__).read_text(encoding="utf-8")[:4000], encoding="utf-8")
    run = ok(
        zoo(
            "visualize",
            str(folder),
            str(text),
            "--unit",
            "2",
            "--kind",
            "cell",
            "--out-dir",
            str(tmp_path / "one"),
            "--show_chars",
            "200",
            "--json",
            "--device",
            "cpu",
            cwd=tmp_path,
        )
    )
    assert json.loads(run.stdout)["unit"] == 2
    assert (tmp_path / "one" / "cell_L0_u2.png").stat().st_size > 1000
    # --ckpt, the text on stdin, units discovered
    run = ok(
        zoo(
            "visualize",
            "--ckpt",
            str(ckpt),
            "--out-dir",
            str(tmp_path / "found"),
            "--json",
            "--device",
            "cpu",
            cwd=tmp_path,
            stdin=text.read_text(encoding="utf-8"),
        )
    )
    rows = json_lines(run.stdout)
    assert rows and {"indent", "column"} <= {r["feature"] for r in rows}
    assert all(Path(r["png"]).is_file() for r in rows)
    assert json.loads((tmp_path / "found" / "units.json").read_text()) == [
        {k: v for k, v in r.items() if k != "png"} for r in rows
    ]


# ---- sequence classifier: classify ------------------------------------------------------------------
AG_TITLES = {
    1: ["Iraq elections", "UN talks on Iran"],
    2: ["Yankees win the series", "Olympic gold for sprinter"],
    3: ["Stocks fall as oil rises", "Fed raises rates"],
    4: ["New Linux kernel", "NASA probe reaches Mars"],
}


def test_classify(tmp_path):
    import csv

    from datamodules.ag_news import AGNewsDataModule
    from zoo.tasks.classifier import SequenceClassifier

    root = tmp_path / "ag_news_csv"
    root.mkdir()
    for name, n in (("train.csv", 8), ("test.csv", 2)):  # AG News' own format: class index, title, description
        with open(root / name, "w", newline="") as f:
            csv.writer(f, quoting=csv.QUOTE_ALL).writerows(
                [str(label), f"{title} ({i})", f"AP - {title.lower()}, reports say."]
                for i in range(n)
                for label, titles in AG_TITLES.items()
                for title in titles
            )
    (root / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    dm = AGNewsDataModule(root=str(root), min_frequency=1, batch_size=4, cache_dir=str(tmp_path / "cache"))
    folder, ckpt = fit_and_save(SequenceClassifier(embedding_dim=8, hidden_size=8), dm, tmp_path / "model")

    texts = ["NASA probe reaches Mars", "Fed raises rates again"]
    run = ok(zoo("classify", str(folder), *texts, "--json", "--device", "cpu", cwd=tmp_path))
    records = json_lines(run.stdout)
    assert [r["text"] for r in records] == texts
    for r in records:
        assert r["label"] in ("World", "Sports", "Business", "Sci/Tech") and abs(sum(r["probs"].values()) - 1) < 1e-4
    out = tmp_path / "labels.jsonl"
    ok(
        zoo(
            "classify",
            "--ckpt",
            str(ckpt),
            "--json",
            "--output",
            str(out),
            "--device",
            "cpu",
            cwd=tmp_path,
            stdin="\n".join(texts) + "\n",
        )
    )
    again = json_lines(out.read_text(encoding="utf-8"))
    assert [r["label"] for r in again] == [r["label"] for r in records]
    assert all(abs(again[i]["probs"][k] - records[i]["probs"][k]) < 1e-5 for i in range(2) for k in records[i]["probs"])
    plain = ok(zoo("classify", "--ckpt", str(ckpt), texts[0], cwd=tmp_path)).stdout.strip().split("\t")
    assert plain[0] == records[0]["label"] and plain[2] == texts[0]


# ---- seq2seq: translate ------------------------------------------------------------------------------
PAIRS = [
    ("ein mann fährt rad .", "a man rides a bike ."),
    ("eine frau liest ein buch .", "a woman reads a book ."),
    ("zwei hunde spielen .", "two dogs play ."),
    ("ein kind schläft .", "a child sleeps ."),
    ("eine frau fährt rad .", "a woman rides a bike ."),
    ("ein mann liest .", "a man reads ."),
]


def test_translate(tmp_path):
    from datamodules.multi30k import Multi30kDataModule
    from zoo.tasks.seq2seq import Seq2Seq

    root = tmp_path / "multi30k"
    root.mkdir()
    for split, repeat in (("train", 6), ("val", 1), ("test_2016_flickr", 1)):  # Multi30k's raw files
        for index, lang in enumerate(("de", "en")):
            with gzip.open(root / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("".join(p[index] + "\n" for p in PAIRS * repeat))
    dm = Multi30kDataModule(root=str(root), vocab_size=100, batch_size=4, cache_dir=str(tmp_path / "cache"))
    model = Seq2Seq(embedding_dim=8, hidden_size=16, dropout=0.0, log_alignments=0)
    folder, ckpt = fit_and_save(model, dm, tmp_path / "model")

    sentences = [PAIRS[0][0], PAIRS[2][0]]
    run = ok(
        zoo(
            "translate",
            str(folder),
            *sentences,
            "--beam_size",
            "2",
            "--json",
            "--device",
            "cpu",
            "--alignment",
            str(tmp_path / "a.png"),
            cwd=tmp_path,
        )
    )
    records = json_lines(run.stdout)
    assert [r["source"] for r in records] == sentences and all(isinstance(r["translation"], str) for r in records)
    assert "attention" not in records[0]  # tensors stay out of the JSON lines; the figure shows them
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "out.txt"
    ok(
        zoo(
            "translate",
            "--ckpt",
            str(ckpt),
            "--beam_size",
            "2",
            "--output",
            str(out),
            "--device",
            "cpu",
            cwd=tmp_path,
            stdin="\n".join(sentences) + "\n",
        )
    )
    assert out.read_text(encoding="utf-8").splitlines() == [r["translation"] for r in records]
    (tmp_path / "in.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    run = ok(zoo("translate", "--ckpt", str(ckpt), "--input", str(tmp_path / "in.txt"), "--beam_size", "1", cwd=tmp_path))
    assert len(run.stdout.splitlines()) == 2


# ---- image captioner: caption ------------------------------------------------------------------------
def test_caption(tmp_path):
    from datamodules.shapes_captions import ShapesCaptions
    from zoo.tasks.captioner import ImageCaptioner

    dm = ShapesCaptions(n_train=16, n_val=8, n_test=8, image_size=64, layout=2, batch_size=8)
    model = ImageCaptioner(
        encoder="test_resnet",
        pretrained=False,
        attention="soft",
        feature_dim=16,
        embedding_dim=8,
        hidden_size=16,
        attention_dim=8,
        dropout=0.0,
        beam_size=2,
        log_images=0,
    )
    folder, ckpt = fit_and_save(model, dm, tmp_path / "model")

    # no image at hand: --draw-example writes one (alone, without a model)
    image = tmp_path / "shapes.png"
    ok(zoo("caption", "--draw-example", str(image), cwd=tmp_path))
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = tmp_path / "figure.png"
    run = ok(
        zoo(
            "caption",
            str(folder),
            str(image),
            "--beam_size",
            "2",
            "--json",
            "--figure",
            str(figure),
            "--device",
            "cpu",
            cwd=tmp_path,
        )
    )
    [record] = json_lines(run.stdout)
    assert record["image"] == str(image) and record["figure"] == str(figure) and "attention" not in record
    assert record["caption"] == " ".join(record["words"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --ckpt, two images from stdin: --figure is then a folder of <image>_attention.png
    second = tmp_path / "again.png"
    second.write_bytes(image.read_bytes())
    figures = tmp_path / "figures"
    run = ok(
        zoo(
            "caption",
            "--ckpt",
            str(ckpt),
            "--beam_size",
            "2",
            "--json",
            "--figure",
            str(figures),
            "--device",
            "cpu",
            cwd=tmp_path,
            stdin=f"{image}\n{second}\n",
        )
    )
    records = json_lines(run.stdout)
    assert [r["caption"] for r in records] == [record["caption"]] * 2
    assert sorted(p.name for p in figures.iterdir()) == ["again_attention.png", "shapes_attention.png"]
    # a missing image is its error record, the others still captioned, exit status 3
    run = zoo("caption", "--ckpt", str(ckpt), str(image), str(tmp_path / "missing.jpg"), "--no-figure", cwd=tmp_path)
    assert run.returncode == 3 and "Traceback" not in run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split("\t")[0] == str(image) and lines[1] == f"ERROR\t{tmp_path / 'missing.jpg'}: no such image file"


# ---- frame classifier: label-frames ------------------------------------------------------------------
def write_frames(folder: Path, count: int, seed: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(1, count + 1):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg")
    return folder


def write_video(path: Path, count: int, seed: int) -> Path:
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(count):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_label_frames(tmp_path):
    from datamodules.moving_shapes import MovingShapesDataModule
    from zoo.tasks.frame_classifier import FrameClassifier

    dm = MovingShapesDataModule(num_train=8, num_val=4, num_test=4, batch_size=4, memory=3)
    folder, ckpt = fit_and_save(FrameClassifier(encoder="zoo_frame_cnn", hidden_size=8), dm, tmp_path / "model")
    clip = write_frames(tmp_path / "clip_a", 7, seed=1)
    video = write_video(tmp_path / "clip_b.mp4", 5, seed=2)

    run = ok(
        zoo(
            "label-frames",
            str(folder),
            str(clip),
            str(video),
            "--json",
            "--device",
            "cpu",
            "--strip",
            str(tmp_path / "strip.png"),
            cwd=tmp_path,
        )
    )
    records = json_lines(run.stdout)
    assert [r["video"] for r in records] == [str(clip), str(video)]
    assert [len(r["labels"]) for r in records] == [7, 5]
    names = getattr(dm, "label_names", None) or dm.classes
    assert all(set(r["labels"]) <= set(names) for r in records)
    assert sum(n for _, n in records[0]["runs"]) == 7 and len(records[0]["probs"]) == 7
    assert (tmp_path / "strip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --ckpt, clips from stdin, text to --output: one line per clip, runs of labels
    out = tmp_path / "labels.txt"
    ok(
        zoo(
            "label-frames", "--ckpt", str(ckpt), "--output", str(out), "--device", "cpu", cwd=tmp_path, stdin=f"{clip}\n{video}\n"
        )
    )
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] == str(clip)
    expected = ", ".join(f"{label} x{n}" for label, n in records[0]["runs"])
    assert lines[0].split("\t")[1] == expected
    run = ok(zoo("label-frames", "--ckpt", str(ckpt), str(clip), "--every-frame", cwd=tmp_path))
    assert run.stdout.strip().split("\t")[1].split() == records[0]["labels"]
    run = ok(zoo("label-frames", "--ckpt", str(ckpt), str(clip), "--every-frame", "--online", cwd=tmp_path))
    assert run.stdout.strip().split("\t")[1].split() == records[0]["labels"]  # frame by frame, the same labels


def test_registered_names_work_like_folders(tmp_path):
    """A name from the registry (`zoo models`) in place of a folder: the models shipped in the package."""
    records = json_lines(
        ok(
            zoo(
                "sample",
                "char_lstm_shakespeare",
                "--prime",
                "ROMEO:",
                "--length",
                "20",
                "--seed",
                "1",
                "--json",
                "--device",
                "cpu",
                cwd=tmp_path,
            )
        ).stdout
    )
    assert records[0]["text"].startswith("ROMEO:") and len(records[0]["text"]) == 26
    records = json_lines(
        ok(zoo("classify", "imdb_bigru", "A wonderful, moving film.", "Dull and far too long.", "--json", cwd=tmp_path)).stdout
    )
    assert [r["label"] for r in records] == ["pos", "neg"]


# ---- visual question answering: answer ------------------------------------------------------------
def test_answer(tmp_path):
    from datamodules.shapes_vqa import ShapesVQA
    from zoo.tasks.vqa import VisualQuestionAnswerer

    dm = ShapesVQA(n_train=32, n_val=8, n_test=8, batch_size=8)
    model = VisualQuestionAnswerer(
        embedding_dim=8, hidden_size=16, feature_dim=16, attention_dim=8, classifier_hidden=16, hops=2, dropout=0.0, log_images=0
    )
    folder, ckpt = fit_and_save(model, dm, tmp_path / "model")

    # no image at hand: --draw-example writes a held-out ShapesVQA image and says its question
    image = tmp_path / "shapes.png"
    run = ok(zoo("answer", "--draw-example", str(image), cwd=tmp_path))
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "true answer" in run.stderr
    figure = tmp_path / "hops.png"
    run = ok(
        zoo(
            "answer",
            str(folder),
            str(image),
            "what colour is the circle?",
            "--json",
            "--top",
            "2",
            "--figure",
            str(figure),
            cwd=tmp_path,
        )
    )
    [record] = json_lines(run.stdout)
    assert record["answer"] in dm.answer_names and len(record["top"]) == 2 and record["figure"] == str(figure)
    assert record["top"][0] == [record["answer"], pytest.approx(record["probability"], abs=1e-4)]
    from PIL import Image

    assert Image.open(figure).size == (720, 260)  # the image and one panel per hop
    # --ckpt, several questions from stdin, an unknown word noted; --figure is then a folder
    run = ok(
        zoo(
            "answer",
            "--ckpt",
            str(ckpt),
            str(image),
            "--figure",
            str(tmp_path / "figs"),
            cwd=tmp_path,
            stdin="is there a red square?\nhow many purple shapes are there?\n",
        )
    )
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].split("\t")[2] == "how many purple shapes are there?"
    assert "'purple' never appeared in the training questions" in run.stderr
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["shapes_q1.png", "shapes_q2.png"]
    # a bad image, or none: one line on stderr and exit status 2; a bad question: its error record, exit status 3
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    for args, message in [
        ((str(bad), "what colour is the circle?"), "bad.png"),
        ((str(tmp_path / "gone.png"), "is there a red square?"), "gone.png"),
        ((str(image),), "no question"),
    ]:
        run = zoo("answer", str(folder), *args, cwd=tmp_path, stdin="")
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)
    for question, message in [("  ", "empty"), ("?!", "no word this model knows"), ("what " * 20, "reads at most 12")]:
        run = zoo("answer", str(folder), str(image), "is there a red square?", question, cwd=tmp_path, stdin="")
        lines = run.stdout.splitlines()
        assert run.returncode == 3 and len(lines) == 2 and "Traceback" not in run.stderr, (question, run.stderr)
        assert lines[1].startswith("ERROR\targument 2: ") and message in lines[1], lines
