"""zoo.hub.format: the pretrained folder (safetensors, float16, int8 rows, readable tokenizer files),
written and read back through TaskModule.save_pretrained / zoo.load_pretrained, every bad folder a
clear error, pickles refused without being unpickled; `zoo export`."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch

from tests.hub_common import VOCAB, assert_refused, folder, isolated_home, outputs, tiny_lm  # noqa: F401  (fixtures)
from zoo import load_pretrained
from zoo.hub import (
    ChecksumMismatchError,
    FormatVersionError,
    MissingFileError,
    PickleRefusedError,
    PretrainedError,
    read_folder,
    write_folder,
)
from zoo.tasks.language_model import CharLanguageModel


def test_roundtrip_fp32_is_exact(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["format_version"] == 1 and config["task"] == "zoo.tasks.language_model.CharLanguageModel"
    assert config["init_args"]["vocab"] == VOCAB and config["init_args"]["hidden_size"] == 16
    assert json.loads((folder / "vocab.json").read_text(encoding="utf-8")) == VOCAB  # readable copy
    assert set(config["files"]) == {"model.safetensors", "vocab.json"}
    loaded = load_pretrained(folder)
    assert not loaded.training
    original = tiny_lm()
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(outputs(loaded), outputs(original))


def test_read_folder_returns_data_not_classes(tmp_path: Path) -> None:
    # the hub's reader hands back the task as a dotted path and a float32 state dict; it builds nothing
    model = tiny_lm()
    written = write_folder(model, tmp_path / "w", dtype=torch.float16, quantize="embeddings")
    config, state = read_folder(written)
    assert config["task"] == "zoo.tasks.language_model.CharLanguageModel" and config["init_args"]["vocab"] == VOCAB
    assert set(state) == set(model.state_dict())
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())


def test_write_folder_is_duck_typed(tmp_path: Path) -> None:
    class Plain(torch.nn.Module):  # not a LightningModule: anything with hparams and state_dict()
        def __init__(self) -> None:
            super().__init__()
            self.hparams = {"size": 3, "labels": ["x", "y"], "_private": object()}
            self.linear = torch.nn.Linear(3, 2)

    written = write_folder(Plain(), tmp_path / "plain")
    config, state = read_folder(written)
    assert config["task"].endswith("Plain") and config["init_args"] == {"size": 3, "labels": ["x", "y"]}
    assert set(state) == {"linear.weight", "linear.bias"} and (written / "labels.json").is_file()
    with pytest.raises(TypeError, match="state_dict"):
        write_folder(object(), tmp_path / "nothing")


def test_export_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    # the card records the weights' sha256: exporting the same model again must give the same file
    model = tiny_lm()
    first = model.save_pretrained(tmp_path / "a", dtype=torch.float16, quantize="embeddings")
    second = model.save_pretrained(tmp_path / "b", dtype=torch.float16, quantize="embeddings")
    for name in ("model.safetensors", "config.json", "vocab.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_fp16_halves_the_file_and_loads_back_as_fp32(tmp_path: Path) -> None:
    model = CharLanguageModel(vocab=VOCAB, embedding_dim=32, hidden_size=128)
    full = model.save_pretrained(tmp_path / "fp32")
    half = model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size = lambda f: (f / "model.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.52 * size(full)
    assert json.loads((half / "config.json").read_text())["dtype"] == "float16"
    loaded = CharLanguageModel.from_pretrained(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    torch.testing.assert_close(outputs(loaded), outputs(model.eval()), atol=2e-3, rtol=2e-3)
    with pytest.raises(ValueError, match="floating-point"):
        model.save_pretrained(tmp_path / "int", dtype=torch.int8)


def test_classifier_folder_carries_its_tokenizer_and_labels(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from datamodules.text import train_tokenizer
    from zoo.tasks.classifier import SequenceClassifier

    texts = ["a wonderful moving film", "a dull and tedious mess", "wonderful acting", "tedious plot"]
    torch.manual_seed(0)
    model = SequenceClassifier(
        train_tokenizer(texts, vocab_size=100, min_frequency=1).to_str(), ["neg", "pos"], embedding_dim=8, hidden_size=6
    ).eval()
    folder = model.save_pretrained(tmp_path / "clf", dtype=torch.float16)
    assert {"tokenizer.json", "label_names.json"} <= {p.name for p in folder.iterdir()}
    assert Tokenizer.from_file(str(folder / "tokenizer.json")).encode("wonderful film").ids  # a real tokenizer file
    assert json.loads((folder / "label_names.json").read_text()) == ["neg", "pos"]
    loaded = load_pretrained(folder)
    assert isinstance(loaded, SequenceClassifier)
    for ours, theirs in zip(loaded.predict(texts), model.predict(texts)):
        assert ours["label"] == theirs["label"]
        assert ours["probs"]["pos"] == pytest.approx(theirs["probs"]["pos"], abs=2e-3)


def test_int8_embeddings_shrink_the_table_and_load_back(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=[f"c{i}" for i in range(400)], embedding_dim=64, hidden_size=16).eval()
    half = model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    int8 = model.save_pretrained(tmp_path / "int8", dtype=torch.float16, quantize="embeddings")
    config = json.loads((int8 / "config.json").read_text())
    assert config["quantized"] == {"embed.weight": {"scheme": "int8_rowwise_absmax", "scale": "embed.weight.__int8_scale__"}}
    saved = lambda f: (f / "model.safetensors").stat().st_size  # noqa: E731
    assert saved(half) - saved(int8) > 0.45 * 400 * 64 * 2  # the table went from 2 bytes a weight to 1
    loaded = load_pretrained(int8)
    error = (loaded.embed.weight - model.embed.weight).abs().max()
    assert error <= model.embed.weight.abs().max() / 127 + 1e-3  # half a quantization step, plus fp16 scales
    with pytest.raises(PretrainedError, match="cannot quantize 'head.bias': int8 rows need a 2-D"):
        model.save_pretrained(tmp_path / "bad", quantize=["head.bias"])
    config["quantized"]["embed.weight"]["scheme"] = "int4"
    (int8 / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match="scheme 'int4'; this zoo reads only 'int8_rowwise_absmax'"):
        load_pretrained(int8)


def test_int8_linears_quantize_every_linear_weight(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CharLanguageModel(vocab=[f"c{i}" for i in range(50)], embedding_dim=8, hidden_size=16).eval()
    linears = sorted(f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear))
    assert linears  # the output head at least
    folder = model.save_pretrained(tmp_path / "lin", dtype=torch.float16, quantize=["linears", "embeddings"])
    config = json.loads((folder / "config.json").read_text())
    assert sorted(config["quantized"]) == sorted([*linears, "embed.weight"])  # biases and recurrent weights stay float16
    loaded = load_pretrained(folder)
    for key in linears:
        weight, back = dict(model.named_parameters())[key], dict(loaded.named_parameters())[key]
        assert (back - weight).abs().max() <= weight.abs().max() / 127 + 1e-3
    with pytest.raises(
        PretrainedError, match="cannot quantize 'convs': not a key of the state dict \\(nor 'embeddings' or 'linears'\\)"
    ):
        model.save_pretrained(tmp_path / "bad", quantize="convs")


class TiedLM(torch.nn.Module):
    """An embedding and an output layer sharing one matrix (as Seq2Seq's tie_embeddings)."""

    hparams = {"vocab": ["a", "b", "c", "d", "e", "f"]}

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(6, 4)
        self.out = torch.nn.Linear(4, 6)
        self.out.weight = self.embed.weight


def test_tied_weights_are_stored_once(tmp_path: Path) -> None:
    from safetensors import safe_open

    from zoo.hub.format import read_folder, write_folder

    torch.manual_seed(0)
    model = TiedLM()
    for quantize in (None, "embeddings"):
        folder = write_folder(model, tmp_path / str(quantize), dtype=torch.float16, quantize=quantize)
        config = json.loads((folder / "config.json").read_text())
        assert config["tied"] == {"out.weight": "embed.weight"}
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            assert "out.weight" not in f.keys() and "out.bias" in f.keys()
        _, state = read_folder(folder)
        assert torch.equal(state["out.weight"], state["embed.weight"])
        assert (state["out.weight"] - model.embed.weight).abs().max() < 0.02
    config["tied"] = {"out.weight": "lost.weight"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match="'out.weight' is tied to 'lost.weight', which is missing"):
        read_folder(folder)


def test_overrides_and_expected_class(folder: Path) -> None:
    assert load_pretrained(folder, dropout=0.0).hparams.dropout == 0.0
    with pytest.raises(PretrainedError, match="do not fit.*shape mismatch"):
        load_pretrained(folder, hidden_size=32)
    with pytest.raises(PretrainedError, match="has no argument hiddn_size.*hidden_size"):
        load_pretrained(folder, hiddn_size=32)

    class Other(CharLanguageModel):
        pass

    with pytest.raises(PretrainedError, match="not a Other"):
        Other.from_pretrained(folder)


# ---- bad folders ---------------------------------------------------------------------------------
@pytest.mark.parametrize("missing", ["model.safetensors", "vocab.json", "config.json"])
def test_missing_file_is_named(folder: Path, missing: str) -> None:
    (folder / missing).unlink()
    with pytest.raises(MissingFileError, match=rf"missing {missing}"):
        load_pretrained(folder)


def test_checksum_mismatch(folder: Path) -> None:
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="model.safetensors: sha256 .* differs"):
        load_pretrained(folder)
    data[-1] ^= 0xFF  # restored: the manifest agrees again, the model card's digest does not
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="differs from 0+ on the model card"):
        read_folder(folder, weights_sha256="0" * 64)


def test_hand_edited_vocab_is_caught(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "vocab.json").write_text(json.dumps(VOCAB[::-1]))
    config["files"]["vocab.json"]["sha256"] = hashlib.sha256((folder / "vocab.json").read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match=r"vocab.json disagrees with init_args\['vocab'\]"):
        load_pretrained(folder)


@pytest.mark.parametrize("version", [2, 0, None])
def test_incompatible_format_version(folder: Path, version) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = version
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        FormatVersionError,
        match=f"format_version {version!r}.*reads format_version 1"
        + (": it comes from a newer zoo: upgrade" if version == 2 else ""),
    ):
        load_pretrained(folder)


def test_broken_config_json_names_the_line(folder: Path) -> None:
    (folder / "config.json").write_text('{\n  "format_version": 1,\n  "task": oops\n}')
    with pytest.raises(PretrainedError, match=r"config.json:3:\d+: not valid JSON"):
        load_pretrained(folder)


class Boom:
    """Unpickling this touches a file: the test proves nothing was unpickled."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def evil_pickle(marker: Path) -> bytes:
    boom = Boom()
    boom.marker = marker
    return pickle.dumps({"weight": boom}, protocol=2)


def test_pickle_as_weights_is_refused_without_unpickling(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    # 1. a pickle where model.safetensors belongs (manifest updated so only the content is wrong)
    (folder / "model.safetensors").write_bytes(evil_pickle(marker))
    config = json.loads((folder / "config.json").read_text())
    config["files"]["model.safetensors"]["sha256"] = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PickleRefusedError, match="refusing to unpickle.*zoo export --ckpt"):
        load_pretrained(folder)
    # 2. a torch.save file (zip with a pickle inside), and a raw pickle, passed directly
    torch.save(tiny_lm().state_dict(), tmp_path / "weights.pt")
    (tmp_path / "evil.ckpt").write_bytes(evil_pickle(marker))
    for path in (tmp_path / "weights.pt", tmp_path / "evil.ckpt"):
        with pytest.raises(PickleRefusedError, match="not safetensors: refusing to unpickle"):
            load_pretrained(path)
    assert not marker.exists()


def test_a_lone_safetensors_file_asks_for_its_folder(folder: Path) -> None:
    with pytest.raises(PretrainedError, match="pass the folder that holds it"):
        load_pretrained(folder / "model.safetensors")
    with pytest.raises(MissingFileError, match="no such file or folder"):
        load_pretrained(folder / "nothing" / "here")


# ---- `zoo export` --------------------------------------------------------------------------------
def test_export_command_turns_a_checkpoint_into_a_folder(tmp_path: Path, capsys) -> None:
    from zoo.cli.export import main

    model = tiny_lm()
    ckpt = tmp_path / "model.ckpt"
    # What Lightning writes, reduced to the keys load_task reads.
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": {**model.hparams, "_class_path": "x"},
            "zoo_task": "zoo.tasks.language_model.CharLanguageModel",
        },
        ckpt,
    )
    assert main(["--ckpt", str(ckpt), "--out-dir", str(tmp_path / "out"), "--fp16"]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    loaded = load_pretrained(tmp_path / "out")
    assert "_class_path" not in json.loads((tmp_path / "out" / "config.json").read_text())["init_args"]
    torch.testing.assert_close(outputs(loaded), outputs(model), atol=2e-3, rtol=2e-3)
    # a checkpoint that records no class: --task names it
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    assert_refused(main, ["--ckpt", str(ckpt), "--out-dir", str(tmp_path / "out2")], "no 'zoo_task' entry", capsys)
    assert (
        main(["--ckpt", str(ckpt), "--out-dir", str(tmp_path / "out2"), "--task", "zoo.tasks.language_model.CharLanguageModel"])
        == 0
    )
    # a pretrained folder (or name) re-exported, here to int8 embeddings
    assert main([str(tmp_path / "out"), "--out-dir", str(tmp_path / "out3"), "--int8", "embeddings"]) == 0
    assert "quantized" in json.loads((tmp_path / "out3" / "config.json").read_text())
    with pytest.raises(SystemExit):
        main(["--out-dir", str(tmp_path / "out4")])  # neither a model nor --ckpt: a usage error


def test_export_of_a_malicious_pickle_fails_cleanly(tmp_path: Path, capsys) -> None:
    from zoo.cli.export import main

    marker = tmp_path / "unpickled"
    (tmp_path / "evil.ckpt").write_bytes(evil_pickle(marker))
    assert_refused(
        main,
        ["--ckpt", str(tmp_path / "evil.ckpt"), "--out-dir", str(tmp_path / "out")],
        "evil.ckpt: not a readable checkpoint of tensors and plain data",
        capsys,
    )
    assert not marker.exists() and not (tmp_path / "out").exists()
