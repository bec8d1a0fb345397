"""Broken and hostile pretrained folders through zoo.hub.format.read_folder and zoo.load_pretrained:
truncated and bit-flipped safetensors, safetensors headers of any shape, config.json with values of the
wrong type or missing keys, init args such as hidden_size=10**12. Each either loads (the weights the
folder holds, as float32) or raises a PretrainedError naming the file; a size the weights do not have
is refused before the module is allocated."""

from __future__ import annotations

import json
import resource
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from tests.hub_common import folder, isolated_home, tiny_lm  # noqa: F401  (fixtures)
from zoo import load_pretrained
from zoo.hub import ChecksumMismatchError, PretrainedError, read_folder
from zoo.tasks.base import load_task
from zoo.tasks.language_model import CharLanguageModel

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict:
    """The files of a tiny character LM's folder, ``{name: bytes}``."""
    written = tiny_lm().save_pretrained(tmp_path_factory.mktemp("pristine") / "tiny")
    return {p.name: p.read_bytes() for p in written.iterdir()}


def make_folder(root: Path, files: dict, config: dict | None = None, manifest: bool = True) -> Path:
    """The pristine folder with ``files`` replaced; ``manifest=False`` drops the sha256 manifest, as in
    a hand-made folder, so the bytes reach the safetensors parser."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    config = dict(config if config is not None else json.loads(files["config.json"]))
    if not manifest:
        config.pop("files", None)
    (root / "config.json").write_text(json.dumps(config))
    return root


def reads_or_refuses(folder: Path, name: str = "model.safetensors"):
    """``read_folder``'s state dict, or ``None`` after a PretrainedError naming ``folder/name``."""
    try:
        return read_folder(folder)[1]
    except PretrainedError as err:
        assert str(folder / name) in str(err) or (name == "config.json" and str(folder) in str(err)), str(err)
        return None


# ---- the weights file --------------------------------------------------------------------------------------
@FUZZ
@given(cut=st.integers(0, 2**16), manifest=st.booleans())
def test_truncated_weights(tmp_path_factory, pristine: dict, cut: int, manifest: bool) -> None:
    weights = pristine["model.safetensors"]
    cut = cut % len(weights)  # every length short of the whole file
    folder = make_folder(tmp_path_factory.mktemp("t") / "m", {**pristine, "model.safetensors": weights[:cut]}, manifest=manifest)
    if manifest:
        with pytest.raises(ChecksumMismatchError, match=r"model\.safetensors: sha256 [0-9a-f]{64} differs"):
            read_folder(folder)
    else:
        assert reads_or_refuses(folder) is None


@FUZZ
@given(
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=4),
    in_header=st.booleans(),
)
def test_bit_flipped_weights(tmp_path_factory, pristine: dict, flips: list, in_header: bool) -> None:
    weights = bytearray(pristine["model.safetensors"])
    header_end = 8 + struct.unpack("<Q", weights[:8])[0]
    for where, bit in flips:
        weights[int(where * header_end) if in_header else header_end + int(where * (len(weights) - header_end))] ^= 1 << bit
    folder = make_folder(tmp_path_factory.mktemp("b") / "m", {**pristine, "model.safetensors": bytes(weights)}, manifest=False)
    state = reads_or_refuses(folder)
    if state is not None:  # works: a flip the parser accepts (a value, a name) gives float32 tensors of the stored shapes
        assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
        if not in_header:
            assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in tiny_lm().state_dict().items()}


TENSOR_HEADERS = st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.fixed_dictionaries(
        {
            "dtype": st.sampled_from(["F32", "F16", "BF16", "I8", "I64", "BOOL", "F8_E4M3", "X9", ""]),
            "shape": st.lists(st.integers(-2, 2**40), max_size=3),
            "data_offsets": st.lists(st.integers(-1, 2**40), min_size=0, max_size=3),
        }
    ),
    max_size=3,
)


@FUZZ
@given(header=st.one_of(TENSOR_HEADERS, JSON), body=st.binary(max_size=64), length_delta=st.sampled_from([0, 0, 0, -1, 1, 2**40]))
def test_any_safetensors_header(tmp_path_factory, pristine: dict, header, body: bytes, length_delta: int) -> None:
    raw = json.dumps(header).encode()
    weights = struct.pack("<Q", max(0, len(raw) + length_delta)) + raw + body
    folder = make_folder(tmp_path_factory.mktemp("h") / "m", {**pristine, "model.safetensors": weights}, manifest=False)
    state = reads_or_refuses(folder)
    if state is not None:
        assert all(isinstance(t, torch.Tensor) for t in state.values())


def test_weights_missing_a_tensor_are_refused_by_load(tmp_path: Path, pristine: dict) -> None:
    state = tiny_lm().state_dict()
    dropped = sorted(state)[0]
    weights = save({k: v for k, v in state.items() if k != dropped})
    folder = make_folder(tmp_path / "m", {**pristine, "model.safetensors": weights}, manifest=False)
    with pytest.raises(
        PretrainedError,
        match=rf"config\.json: the weights do not fit CharLanguageModel\(its saved arguments\): missing \['{dropped}'\]",
    ):
        load_pretrained(folder)


# ---- config.json -------------------------------------------------------------------------------------------
@FUZZ
@given(
    key=st.sampled_from(["format_version", "task", "init_args", "files", "quantized", "dtype", "params"]),
    value=st.one_of(JSON, st.just("<missing>")),
)
def test_config_values_of_the_wrong_type(tmp_path_factory, pristine: dict, key: str, value) -> None:
    config = json.loads(pristine["config.json"])
    if value == "<missing>":
        config.pop(key, None)
    else:
        config[key] = value
    folder = make_folder(tmp_path_factory.mktemp("c") / "m", pristine, config)
    try:
        model = load_pretrained(folder)
    except PretrainedError as err:  # TaskNameError, FormatVersionError, MissingFileError, ... are all PretrainedErrors
        assert str(folder) in str(err), str(err)
    else:  # works: a value the reader accepts (a 'params' count, an empty 'quantized', ...) loads the same model
        assert isinstance(model, CharLanguageModel)


INIT_KEYS = ["hidden_size", "embedding_dim", "num_layers", "cell", "dropout", "vocab", "grad_clip"]


@FUZZ
@given(key=st.sampled_from(INIT_KEYS), value=st.one_of(JSON, st.integers(-2, 2**62)))
def test_init_args_of_the_wrong_type_or_size(tmp_path_factory, pristine: dict, key: str, value) -> None:
    config = json.loads(pristine["config.json"])
    config["init_args"][key] = value
    files = {**pristine}
    if key == "vocab" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        files["vocab.json"] = json.dumps(value).encode()  # the readable copy agrees: the weights decide
    folder = make_folder(tmp_path_factory.mktemp("a") / "m", files, config, manifest=False)
    try:
        model = load_pretrained(folder)
    except PretrainedError as err:
        assert str(folder / "config.json") in str(err) or str(folder) in str(err), str(err)
    else:  # works only if the value builds a module the weights fit exactly
        assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in tiny_lm().state_dict().items()}


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("hidden_size", 10**12, r"init arg hidden_size=1000000000000 is outside \[1, 65536\]"),  # the schema's bound (issue 28)
        ("embedding_dim", 2**31, r"init arg embedding_dim=2147483648 is outside \[1, 65536\]"),
        ("num_layers", 10**6, r"init arg num_layers=1000000 is outside \[1, 64\]"),
        ("hidden_size", 60000, r"init arg hidden_size=60000 cannot fit weights that hold [\d,]+ weights in all"),  # within it
        ("num_layers", 64, r"init arg num_layers=64 cannot fit weights that hold \d+ tensors in all"),
        (
            "hidden_size",
            1000,
            r"the weights do not fit CharLanguageModel\(its saved arguments\): shape mismatch",
        ),  # within the bound
    ],
)
def test_a_huge_size_is_refused_before_allocating(tmp_path: Path, pristine: dict, key: str, value: int, match: str) -> None:
    config = json.loads(pristine["config.json"])
    config["init_args"][key] = value
    folder = make_folder(tmp_path / "m", pristine, config)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(PretrainedError, match=r"config\.json: " + match):
        load_pretrained(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing the size of the model


def test_a_checkpoint_with_hostile_hyper_parameters(tmp_path: Path) -> None:
    # The --ckpt path builds through the same check: wrong types and huge sizes end in one clear error.
    state = tiny_lm().state_dict()
    for hparams, match in [
        ({"vocab": list("ab"), "hidden_size": "sixteen"}, r"init arg hidden_size='sixteen' must be an integer"),
        ({"vocab": list("ab"), "cell": 5}, r"its init args do not build CharLanguageModel \(\w+Error"),
        ({"vocab": list("ab"), "hidden_size": 10**12}, r"init arg hidden_size=1000000000000 is outside"),
        ({"vocab": list("ab"), "hidden_size": 16}, r"the weights do not fit CharLanguageModel.*shape mismatch"),
    ]:
        path = tmp_path / "bad.ckpt"
        torch.save(
            {"zoo_task": "zoo.tasks.language_model.CharLanguageModel", "hyper_parameters": hparams, "state_dict": state}, path
        )
        with pytest.raises(PretrainedError, match=rf"{path}: {match}"):
            load_task(path)
