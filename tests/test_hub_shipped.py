"""The weights that ship: each re-scored on a slice with its card's scorer, the size policy, the
wheel that carries them, and PyTorch Hub's entry points (hubconf.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from tests.hub_common import isolated_home  # noqa: F401  (fixture)
from zoo import create_model, list_models, load_pretrained
from zoo.hub import model_entry

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHIPPED = [name for name in list_models() if model_entry(name).weights == "package"]
# The size policy (issue 14): a model folder at most 16 MB, all shipped weights together at most 40 MB.
FOLDER_LIMIT, TOTAL_LIMIT = 16 * 10**6, 40 * 10**6
DATA_OPTIONS = ("corpus", "imdb", "multi30k")  # slice_check keys that name data under ../shared/data
SCORER_OPTIONS = ("limit", "split", "max_chars")


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads spin-wait behind other
    processes (a 0.6 s check took 14 s); the numbers do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def slice_options(name: str) -> dict:
    """The scorer's keyword arguments for ``name``'s slice check; skips when its real data is absent."""
    check = model_entry(name).card.slice_check
    python = check.get("python")
    if python and python != f"{sys.version_info.major}.{sys.version_info.minor}":
        pytest.skip(f"{name}'s corpus is Python {python}'s standard library; this is Python {sys.version_info[:2]}")
    options = {k: check[k] for k in SCORER_OPTIONS if k in check}
    for key in DATA_OPTIONS:
        if key in check:
            path = SHARED_DATA / check[key]
            builtin = key == "corpus" and "/" not in check[key] and not path.exists()  # python-stdlib, tinyshakespeare
            if not builtin and not path.exists():
                pytest.skip(f"real data not available: {path} is absent")
            options[key] = check[key] if builtin else str(path)
    return options


def test_every_shipped_model_has_a_slice_check() -> None:
    assert {"moving_shapes_gru", "shapes_caption_soft"} <= set(SHIPPED)
    for name in SHIPPED:
        check = model_entry(name).card.slice_check
        expected = set(check) - set(DATA_OPTIONS) - set(SCORER_OPTIONS) - {"python"}
        assert "limit" in check and expected, f"{name}: slice_check needs a limit and the numbers it gives"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_rescores_its_slice(name: str, one_thread) -> None:
    from zoo.scoring import score

    options = slice_options(name)
    check = model_entry(name).card.slice_check
    result = score(load_pretrained(name), **options)
    for key, value in check.items():
        if key in DATA_OPTIONS or key in SCORER_OPTIONS or key == "python":
            continue
        # The same weights, data and float32 CPU operations give the same numbers; only the order of
        # floating-point sums may change with the thread count and the BLAS build, in the 6th digit.
        # Counts and accuracies over a few hundred items move by whole items, far more than 1e-4.
        assert result[key] == pytest.approx(value, rel=1e-4, abs=1e-6), f"{name}: {key} {result[key]} != card {value}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_match_their_card(name: str) -> None:
    entry = model_entry(name)
    card, weights = entry.card, entry.package_dir / "model.safetensors"
    assert weights.stat().st_size == card.size
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card.sha256
    model = create_model(name, pretrained=True)
    assert sum(p.numel() for p in model.parameters()) == card.params
    # the registered configuration is the shipped one (apart from the data-derived vocab/tokenizer)
    config = json.loads((entry.package_dir / "config.json").read_text())
    assert config["task"] == entry.task
    for key, value in entry.init_args.items():
        assert config["init_args"][key] == value, key


def test_size_policy() -> None:
    sizes = {name: sum(f.stat().st_size for f in model_entry(name).package_dir.iterdir()) for name in SHIPPED}
    over = {name: size for name, size in sizes.items() if size > FOLDER_LIMIT}
    assert not over, f"model folders over {FOLDER_LIMIT:,} bytes: {over}"
    weights = sum((model_entry(name).package_dir / "model.safetensors").stat().st_size for name in SHIPPED)
    assert weights <= TOTAL_LIMIT, f"shipped weights take {weights:,} bytes, over {TOTAL_LIMIT:,}"
    # every folder under zoo/pretrained is a registered model (nothing ships unannounced)
    folders = {p.name for p in (REPO / "zoo" / "pretrained").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(SHIPPED)


# ---- the one-command demos, from the package and no data ------------------------------------------
def test_captioner_demo_draws_and_captions(tmp_path: Path, capsys, one_thread) -> None:
    from zoo.cli.caption import main

    image, figure = tmp_path / "shapes.png", tmp_path / "fig.png"
    assert main(["shapes_caption_soft", "--draw-example", str(image), "--figure", str(figure)]) == 0
    out, err = capsys.readouterr()
    truth = err.split("true caption: ")[1].split(")")[0]
    assert out.strip() == f"{image}\t{truth}\t{figure}"  # the held-out image, captioned right
    assert figure.stat().st_size > 10_000


def test_frame_labeller_demo_draws_and_labels(tmp_path: Path, capsys, one_thread) -> None:
    from zoo.cli.label_frames import main

    clip, strip = tmp_path / "clip", tmp_path / "strip.png"
    assert main(["--draw-example", str(clip)]) == 0  # alone: only draws
    err = capsys.readouterr().err
    frames = sorted(clip.glob("*.png"))
    assert [p.name for p in frames[:2]] == ["000001.png", "000002.png"] and "16 frames" in err
    label = err.split("every frame's label: ")[1].split(";")[0]
    assert main(["moving_shapes_gru", str(clip), "--strip", str(strip)]) == 0
    assert capsys.readouterr().out.strip() == f"{clip}\t{label} x{len(frames)}"  # hidden frames too
    assert strip.is_file()


# ---- PyTorch Hub -------------------------------------------------------------------------------------
def test_hubconf_exposes_every_registered_model() -> None:
    # What torch.hub.list does on a fetched repository (this torch's list() only fetches from GitHub).
    with torch.hub._add_to_sys_path(str(REPO)):
        hubconf = torch.hub._import_module("hubconf", str(REPO / "hubconf.py"))
    entrypoints = [f for f in dir(hubconf) if callable(getattr(hubconf, f)) and not f.startswith("_")]
    assert entrypoints == list_models()
    torch.hub._check_dependencies(hubconf)  # every listed dependency imports here


def test_torch_hub_load_local_classifies_a_review() -> None:
    model = torch.hub.load(str(REPO), "imdb_bigru", source="local", pretrained=True)
    assert type(model).__name__ == "SequenceClassifier" and not model.training
    reviews = [
        "One of the best films of the year: moving, funny and beautifully acted.",
        "A dull, lifeless mess. I want my two hours back.",
    ]
    assert [r["label"] for r in model.predict(reviews)] == ["pos", "neg"]
    fresh = torch.hub.load(str(REPO), "moving_shapes_gru", source="local", pretrained=False, hidden_size=8)
    assert fresh.hparams.hidden_size == 8


# ---- the wheel -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_wheel_carries_every_shipped_model(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building in the checkout would leave build/ and *.egg-info there
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("zoo", "datamodules"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in SHIPPED:
        folder = model_entry(model).package_dir
        files = json.loads((folder / "config.json").read_text())["files"]
        expected = {"config.json", *files} | {p.name for p in folder.iterdir() if p.is_file()}
        missing = {f for f in expected if f"zoo/pretrained/{model}/{f}" not in names}
        assert not missing, f"the wheel lacks {model}'s {sorted(missing)}"
