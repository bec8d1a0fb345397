"""zoo/export.py: every task's inference graphs as ONNX (onnxruntime) and .pt2 (torch.export.load) equal
eager PyTorch to 1e-4 on several batch sizes and lengths, for every cell family; what cannot export
says why; the core install never imports onnx; the torch-free example reproduces the model's greedy
text and translation. Exporting costs seconds per graph, so all but one family are slow-marked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from datamodules.tokenizers import EOS_ID, train_tokenizer
from tests.test_seq2seq import make as make_translator
from tests.test_seq2seq import tokenizers  # noqa: F401  (a fixture)
from zoo.export import MANIFEST, ExportError, export, graphs
from zoo.families import CELLS
from zoo.tasks.classifier import SequenceClassifier
from zoo.tasks.frame_classifier import FrameClassifier
from zoo.tasks.language_model import CharLanguageModel

REPO = Path(__file__).resolve().parents[1]
FAMILIES = sorted(c for c in CELLS if not getattr(CELLS[c], "not_exportable", None))  # every family that exports
REFUSED = sorted(c for c in CELLS if getattr(CELLS[c], "not_exportable", None))  # the ones that say why
SLOW_FAMILIES = [pytest.param(f, marks=pytest.mark.slow) if f != "gru" else f for f in FAMILIES]
VOCAB = ["<unk>"] + list("abcdefgh \n")
SHAPES = ((1, 1), (3, 6), (4, 2))  # (batch, length): lengths within a batch differ


def assert_exports_equal(model, folder: Path, shapes=SHAPES) -> None:
    """Export ``model``, then run each graph's ONNX file and .pt2 program on fresh inputs of every shape
    and compare them with the eager module."""
    ort = pytest.importorskip("onnxruntime")
    written = export(model, folder)
    assert {p.name for p in written["onnx"]} == {p.with_suffix(".onnx").name for p in written["pt2"]}
    for batch, length in shapes:
        for graph in graphs(model, batch=batch, length=max(length, 1)):
            with torch.no_grad():
                expected = graph.module(**graph.inputs)
            session = ort.InferenceSession(str(folder / f"{graph.name}.onnx"))
            assert [o.name for o in session.get_outputs()] == graph.outputs
            declared = {i.name for i in session.get_inputs()}  # an input the graph does not use is not one
            onnx_out = session.run(None, {k: v.numpy() for k, v in graph.inputs.items() if k in declared})
            program = torch.export.load(str(folder / f"{graph.name}.pt2")).module()
            pt2_out = program(**graph.inputs)
            if isinstance(expected, Tensor):  # a graph with one output returns it bare
                expected, pt2_out = (expected,), (pt2_out,)
            for name, want, got_onnx, got_pt2 in zip(graph.outputs, expected, onnx_out, pt2_out):
                torch.testing.assert_close(
                    torch.from_numpy(got_onnx),
                    want,
                    atol=1e-4,
                    rtol=1e-4,
                    msg=lambda m: f"{graph.name}.onnx {name}, batch {batch}, length {length}: {m}",
                )
                torch.testing.assert_close(
                    got_pt2,
                    want,
                    atol=1e-4,
                    rtol=1e-4,
                    msg=lambda m: f"{graph.name}.pt2 {name}, batch {batch}, length {length}: {m}",
                )


def test_the_core_install_never_imports_onnx():
    code = (
        "import sys, zoo, zoo.cli, zoo.export, zoo.tasks.language_model, zoo.cli.export; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxscript', 'onnxruntime')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("cell", SLOW_FAMILIES)
def test_lm_step(cell, tmp_path):
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=VOCAB, cell=cell, hidden_size=8, embedding_dim=4, num_layers=2).eval()
    assert_exports_equal(model, tmp_path)
    info = json.loads((tmp_path / MANIFEST).read_text())
    assert info["graphs"]["lm_step"]["inputs"]["h"]["shape"] == [2, "batch", 8]
    assert json.loads((tmp_path / "vocab.json").read_text()) == VOCAB
    # the step, fed its own state, is the stream
    stream, step = model.stream(), graphs(model, batch=1)[0].module
    h = {"h": torch.zeros(2, 1, 8), **({"c": torch.zeros(2, 1, 8)} if cell == "lstm" else {})}
    for char in "abc":
        log_probs, *new = step(torch.tensor([VOCAB.index(char)]), **h)
        h = dict(zip(h, new))
        torch.testing.assert_close(log_probs, stream.step(char), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("cell", FAMILIES)
def test_classifier_with_lengths(cell, tmp_path):
    texts = ["a great film", "an awful film", "great acting , loved it"]
    torch.manual_seed(0)
    model = SequenceClassifier(
        train_tokenizer(texts, vocab_size=50, min_frequency=1).to_str(),
        ["neg", "pos"],
        cell=cell,
        embedding_dim=6,
        hidden_size=5,
        bidirectional=True,
        pool="last+max+mean+attention",
    ).eval()
    assert_exports_equal(model, tmp_path, shapes=((1, 1), (2, 1), (3, 6), (4, 2)))
    assert json.loads((tmp_path / "label_names.json").read_text()) == ["neg", "pos"]
    ids = torch.tensor([model.tokenizer.encode("a great film").ids])
    with torch.no_grad():  # the graph's module outside export is the model's own forward
        torch.testing.assert_close(graphs(model)[0].module(ids, torch.tensor([ids.shape[1]])), torch.softmax(model(ids), -1))


@pytest.mark.slow
@pytest.mark.parametrize("cell,attention", [("gru", "general"), ("lstm", "additive"), ("rnn", "none")])
def test_translator_encoder_and_step(tokenizers, cell, attention, tmp_path):  # noqa: F811
    model = make_translator(tokenizers, cell=cell, attention=attention, hidden_size=6, embedding_dim=6)
    assert_exports_equal(model, tmp_path, shapes=((1, 2), (3, 5)))
    assert {"source_tokenizer.json", "target_tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.slow
def test_captioner_encoder_and_step(tmp_path):
    from zoo.tasks.captioner import ImageCaptioner

    torch.manual_seed(0)
    tokenizer = train_tokenizer(["a red square", "a blue circle left of a square"], vocab_size=30, min_frequency=1).to_str()
    model = ImageCaptioner(
        tokenizer_json=tokenizer,
        encoder="test_resnet",
        pretrained=False,
        attention="soft",
        cell="lstm",
        feature_dim=8,
        embedding_dim=8,
        hidden_size=8,
        attention_dim=8,
        dropout=0.0,
        image_config={"size": 64},
    ).eval()
    assert_exports_equal(model, tmp_path, shapes=((1, 1), (3, 1)))


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [dict(cell="lstm", num_layers=2), dict(recurrent=False)])
def test_frame_step(overrides, tmp_path):
    torch.manual_seed(0)
    model = FrameClassifier(
        label_names=["a", "b", "c"], encoder="zoo_frame_cnn", hidden_size=8, frame_size=32, **overrides
    ).eval()
    assert_exports_equal(model, tmp_path, shapes=((1, 1), (3, 1)))


def test_what_cannot_export_says_why(tmp_path):
    bidirectional = FrameClassifier(label_names=["a", "b"], encoder="zoo_frame_cnn", hidden_size=4, bidirectional=True)
    with pytest.raises(ExportError, match="bidirectional and cannot stream.*no step graph to export"):
        export(bidirectional, tmp_path)
    clip_mean = FrameClassifier(label_names=["a", "b"], encoder="zoo_frame_cnn", hidden_size=4, recurrent=False, target="clip")
    with pytest.raises(ExportError, match="recurrent: false with target: clip averages every frame"):
        export(clip_mean, tmp_path)
    with pytest.raises(ValueError, match=r"unknown export format\(s\) \['tflite'\]"):
        export(bidirectional, tmp_path, formats=("tflite",))
    from zoo.cli.export import main

    bidirectional.save_pretrained(tmp_path / "bi")
    assert main([str(tmp_path / "bi"), "--onnx", str(tmp_path / "out")]) == 2  # a user error: its message, status 2
    assert not (tmp_path / "out" / "frame_step.onnx").exists()


@pytest.mark.slow
def test_torch_free_example_generates_and_translates_like_the_model(tokenizers, tmp_path):  # noqa: F811
    """`zoo export --onnx` on a pretrained folder, then examples/onnx_generate.py (numpy + onnxruntime +
    tokenizers): the same greedy text and translation as the model, and torch never imported."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    lm = CharLanguageModel(vocab=VOCAB, cell="lstm", hidden_size=8, embedding_dim=4)
    lm.save_pretrained(tmp_path / "lm")
    translator = make_translator(tokenizers, attention="general")
    translator.save_pretrained(tmp_path / "mt")
    for name in ("lm", "mt"):
        subprocess.run(
            [sys.executable, "-m", "zoo.cli", "export", str(tmp_path / name), "--onnx", str(tmp_path / f"{name}_onnx")],
            check=True,
            cwd=REPO,
            capture_output=True,
        )
    sentence = "ein mann sieht eine katze."
    run = subprocess.run(
        [
            sys.executable,
            "examples/onnx_generate.py",
            "--lm",
            str(tmp_path / "lm_onnx"),
            "--prime",
            "ab",
            "--length",
            "12",
            "--translator",
            str(tmp_path / "mt_onnx"),
            sentence,
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    text, translation = [json.loads(line) for line in run.stdout.splitlines()]
    assert text["text"] == lm.generate("ab", 12, temperature=0)
    expected = translator.predict(sentence, beam_size=1)[0]
    ids = [i for i in translation["ids"] if i != EOS_ID]
    assert translator.pieces("target", ids) == [t for t in expected["target_tokens"] if t != "<eos>"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        dict(hops=2, relative=True, shift=1, cell="lstm", bidirectional=True),
        dict(attention="none", cell="gru"),
        dict(image=False, cell="mingru"),
    ],
)
def test_vqa_answer(overrides, tmp_path):
    """The VQA model's one graph (questions and images in, every answer's probability and each hop's
    attention out) equals the eager model, for SAN with its relative and shift hops and both baselines."""
    from datamodules.shapes_vqa import ShapesVQA
    from tests.test_vqa import SMALL
    from zoo.tasks.vqa import VisualQuestionAnswerer

    data = ShapesVQA(n_train=48, n_val=8, n_test=8, image_size=64, layout=2, max_objects=3, batch_size=8)
    data.setup()
    torch.manual_seed(0)
    model = VisualQuestionAnswerer(**{**SMALL, "image_config": data.image_config, **overrides})
    model.adopt_data(data)
    model.build_if_ready()
    assert_exports_equal(model.eval(), tmp_path, shapes=((1, 1), (3, 6)))
    info = json.loads((tmp_path / MANIFEST).read_text())
    assert info["answer_names"] == data.answer_names and "tokenizer.json" in info["files"]
    batch = next(iter(data.val_dataloader()))
    with torch.no_grad():  # the graph's module outside export is the model's own answer
        graph = graphs(model)[0].module
        inputs = {k: batch[k] for k in ("ids", "lengths", "images") if k != "images" or model.hparams.image}
        probs = graph(**inputs)[0]
    expected = [r["probability"] for r in model.answer_batch(batch)]
    torch.testing.assert_close(probs.max(-1).values, torch.tensor(expected))


@pytest.mark.slow
def test_zoo_export_of_the_shipped_vqa_model(tmp_path):
    """`zoo export shapes_vqa_san --onnx DIR` as a user types it: onnxruntime's answers are the model's."""
    ort = pytest.importorskip("onnxruntime")
    run = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "export", "shapes_vqa_san", "--onnx", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    from zoo.tasks.base import load_pretrained

    model = load_pretrained("shapes_vqa_san")
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[8:24, 8:24] = (255, 0, 0)
    [result] = model.predict([(image, "what color is the square?")])
    ids = np.array([model.tokenizer.encode("what color is the square?", add_special_tokens=False).ids])
    session = ort.InferenceSession(str(tmp_path / "answer.onnx"))
    feed = {"ids": ids, "lengths": np.array([ids.shape[1]]), "images": model.image_batch([image]).numpy()}
    probs, attention = session.run(None, feed)
    assert model.hparams.answer_names[int(probs[0].argmax())] == result["answer"]
    np.testing.assert_allclose(probs[0].max(), result["probability"], atol=1e-4)
    np.testing.assert_allclose(attention[0], result["attention"].numpy(), atol=1e-4)


@pytest.mark.parametrize("cell", REFUSED)
def test_a_family_that_cannot_export_says_why_in_one_line(cell, tmp_path):
    model = CharLanguageModel(vocab=VOCAB, cell=cell, hidden_size=8, embedding_dim=4).eval()
    with pytest.raises(ExportError, match=f"cell '{cell}' is not exportable: ") as error:
        export(model, tmp_path, formats=("pt2",))
    assert "\n" not in str(error.value)
