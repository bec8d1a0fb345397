"""Issue 28, "files decide nothing": a checkpoint, a model folder or an archive chooses no code, no
network and no unbounded memory. Each test holds a marker file or a local server that would record
the forbidden effect, asserts that it did not happen, and that the refusal is one line."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.hub_common import VOCAB, isolated_home, tiny_lm  # noqa: F401  (fixture)
from zoo import load_pretrained
from zoo.hub import CheckpointError, PretrainedError, TaskNameError
from zoo.hub.format import sha256_of
from zoo.hub.schema import BOUNDS, SchemaError
from zoo.tasks.base import load_task
from zoo.tasks.language_model import CharLanguageModel
from zoo.tasks.resolve import check_resume

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "video_frames_shapes.yaml"
FRAMES = "zoo.tasks.frame_classifier.FrameClassifier"
BORING = "lightning.pytorch.demos.boring_classes.BoringModel"


def one_line(err: str) -> str:
    """The command's stderr holds exactly one line, the zoo's error."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def ckpt(path: Path, hparams: dict, state: dict | None = None, **extra) -> Path:
    torch.save(
        {
            "pytorch-lightning_version": "2.6.0",
            "hyper_parameters": hparams,
            "state_dict": {"w": torch.zeros(2)} if state is None else state,
            **extra,
        },
        path,
    )
    return path


# ---- 1. --ckpt_path cannot choose the model class --------------------------------------------------
@pytest.fixture
def marker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A LightningModule whose module writes `imported.txt` when imported: the forbidden effect."""
    (tmp_path / "evil_marker.py").write_text(
        textwrap.dedent(f"""
        from pathlib import Path
        Path({str(tmp_path / "imported.txt")!r}).write_text("imported")
        from lightning.pytorch.demos.boring_classes import BoringModel as Evil
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "imported.txt"
    sys.modules.pop("evil_marker", None)


def test_ckpt_path_naming_another_class_is_refused_before_import(
    marker_module: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    path = ckpt(tmp_path / "swapped.ckpt", {"_class_path": "evil_marker.Evil"})
    assert main(["validate", "--config", str(RECIPE), "--ckpt_path", str(path), "--trainer.logger", "false"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("zoo validate: error: ") and str(path) in line
    assert "'evil_marker.Evil'" in line and f"'{FRAMES}'" in line  # both classes named
    assert not marker_module.exists() and "evil_marker" not in sys.modules


@pytest.mark.parametrize(
    "content, where",
    [
        ({"hyper_parameters": {"class_path": BORING, "init_args": {}}}, "hyper_parameters.class_path"),
        ({"hyper_parameters": {"_class_path": FRAMES, "encoder": {"class_path": BORING}}}, "hyper_parameters.encoder.class_path"),
        ({"hyper_parameters": {"_class_path": FRAMES, "x": [{"class_path": 5}]}}, "hyper_parameters.x[0].class_path"),
        ({"hyper_parameters": {}, "zoo_task": "zoo.tasks.classifier.SequenceClassifier"}, "zoo_task"),
    ],
)
def test_every_class_a_checkpoint_names_must_be_the_recipes(tmp_path: Path, content: dict, where: str) -> None:
    path = ckpt(tmp_path / "x.ckpt", content.pop("hyper_parameters"), **content)
    with pytest.raises(TaskNameError, match=f"its {where.replace('[', '.').replace(']', '.')} names") as info:
        check_resume(path, FRAMES, {})
    assert "\n" not in str(info.value) and FRAMES in str(info.value)


def test_changed_settings_are_named(tmp_path: Path) -> None:
    path = ckpt(tmp_path / "x.ckpt", {"_class_path": FRAMES, "hidden_size": 32, "cell": "gru", "label_names": ["a"]})
    changed, state = check_resume(path, FRAMES, {"hidden_size": 64, "cell": "gru", "label_names": None, "lr": 0.1})
    assert changed == ["hidden_size"] and list(state) == ["w"]  # None in the recipe: data the checkpoint supplies


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint", "not a readable checkpoint of tensors and plain data"),
        ({"hyper_parameters": {}, "state_dict": {}}, "not a Lightning checkpoint"),
        ({"pytorch-lightning_version": "2.6.0", "hyper_parameters": {1: 2}, "state_dict": {}}, "must be a dict of named values"),
        ({"pytorch-lightning_version": "2.6.0", "hyper_parameters": {}}, "no 'state_dict' of tensors"),
    ],
)
def test_bad_ckpt_path_files_are_one_line(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as info:
        check_resume(path, FRAMES, {})
    assert "\n" not in str(info.value)


def test_ckpt_path_weights_that_do_not_fit_are_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    path = ckpt(tmp_path / "x.ckpt", {"_class_path": FRAMES, "label_names": ["red", "green", "blue", "yellow"]})
    assert main(["validate", "--config", str(RECIPE), "--ckpt_path", str(path), "--trainer.logger", "false"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "its weights do not fit the recipe's FrameClassifier: missing [" in line and "unexpected ['w']" in line


def test_ckpt_path_url_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["test", "--config", str(RECIPE), "--ckpt_path", "http://127.0.0.1:9/x.ckpt"]) == 2
    assert "resuming from a URL is refused" in one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_zoo_fit_with_a_boring_model_checkpoint_is_refused(tmp_path: Path) -> None:
    """Issue 28's must-show, as a user types it: exit 2, one line, BoringModel's module never imported."""
    ckpt(tmp_path / "swapped.ckpt", {"_class_path": BORING})
    code = (
        "import sys; from zoo.cli import main; code = main(sys.argv[1:]); "
        "print('IMPORTED' if 'lightning.pytorch.demos.boring_classes' in sys.modules else 'CLEAN'); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "fit", "--config", str(RECIPE), "--ckpt_path", "swapped.ckpt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"},
    )
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("zoo fit: error: swapped.ckpt: refusing --ckpt_path") and BORING in line and FRAMES in line
    assert done.stdout.split() == ["CLEAN"]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "lightning_logs").exists()  # nothing ran


@pytest.mark.slow
def test_a_real_checkpoint_still_resumes_by_path(tiny_corpus: Path, tmp_path: Path) -> None:
    """The honest case through the same check: `zoo fit` writes a checkpoint, `zoo validate --ckpt_path
    FILE` takes it (exit 0, no warning), and a recipe that says another dropout is told so."""
    from tests.test_cli import RECIPE as LM_RECIPE
    from tests.test_cli import TINY, zoo

    args = [
        "--config",
        LM_RECIPE,
        "--data.init_args.corpus",
        str(tiny_corpus),
        *TINY,
        "--trainer.logger",
        "false",
        "--trainer.limit_val_batches",
        "2",
    ]
    fit = zoo(
        "fit",
        *args,
        "--trainer.max_steps",
        "2",
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.dirpath",
        "ck",
        "--trainer.callbacks.save_last",
        "true",
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-2000:]
    ok = zoo("validate", *args, "--ckpt_path", "ck/last.ckpt", cwd=tmp_path)
    assert ok.returncode == 0 and "warning" not in ok.stderr, ok.stderr[-2000:]
    told = zoo("validate", *args, "--model.init_args.dropout", "0.25", "--ckpt_path", "ck/last.ckpt", cwd=tmp_path)
    assert told.returncode == 0, told.stderr[-2000:]
    assert (
        "zoo validate: warning: ck/last.ckpt changes the recipe's model settings dropout to the checkpoint's values"
        in told.stderr
    )


# ---- 2. a checkpoint without the weights its task needs ------------------------------------------
def test_checkpoint_without_weights_is_refused_at_load(tmp_path: Path) -> None:
    torch.save(
        {"zoo_task": "zoo.tasks.language_model.CharLanguageModel", "hyper_parameters": {}, "state_dict": {}}, tmp_path / "a.ckpt"
    )
    with pytest.raises(PretrainedError, match="incomplete: CharLanguageModel cannot be built without vocab"):
        load_task(tmp_path / "a.ckpt")
    torch.save(
        {"zoo_task": "zoo.tasks.language_model.CharLanguageModel", "hyper_parameters": {"vocab": VOCAB}, "state_dict": {}},
        tmp_path / "b.ckpt",
    )
    with pytest.raises(PretrainedError, match=r"holds no weights \(an empty state dict\)"):
        load_task(tmp_path / "b.ckpt", CharLanguageModel)


# ---- 2. bounds on what a file may state ------------------------------------------------------------
def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def edit(folder: Path, tensors: dict | None = None, **changes) -> Path:
    """Change a pretrained folder's config.json (and weights) and rewrite its manifest, as an
    attacker who controls every file would: the checksums agree."""
    from safetensors.torch import save_file

    if tensors is not None:
        save_file(tensors, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if key == "init_args":
            config["init_args"].update(value)
        else:
            config[key] = value
    config["files"] = {n: {"sha256": sha256_of(folder / n), "size": (folder / n).stat().st_size} for n in config["files"]}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def lm_folder(tmp_path: Path) -> Path:
    return tiny_lm().save_pretrained(tmp_path / "lm", quantize="embeddings")


def test_quantized_shapes_are_checked_before_allocating(lm_folder: Path) -> None:
    # 150 kB of int8 rows and 400 kB of scales that broadcast to 15e9 floats (60 GB) if multiplied out
    q, scale = torch.ones(1, 150_000, dtype=torch.int8), torch.ones(100_000)
    name = next(iter(json.loads((lm_folder / "config.json").read_text())["quantized"]))
    before = peak_mb()
    edit(lm_folder, {name: q, name + ".__int8_scale__": scale})
    with pytest.raises(SchemaError, match=r"is I8 \[1, 150000\] with scale F32 \[100000\]; expected int8 \(rows, cols\)") as info:
        load_pretrained(lm_folder)
    assert "\n" not in str(info.value) and peak_mb() - before < 200


@pytest.mark.parametrize(
    "quantized, message",
    [
        ({"embedding.weight": {"scheme": "int8_rowwise_absmax", "scale": [1, 2]}}, "'scale' must name a tensor, got \\[1, 2\\]"),
        ([1], "key 'quantized' must map tensor names"),
    ],
)
def test_quantized_entries_of_the_wrong_type(lm_folder: Path, quantized, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        load_pretrained(edit(lm_folder, quantized=quantized))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("hidden_size", 10**12, r"hidden_size=1000000000000 is outside \[1, 65536\]"),
        ("dropout", 5.0, r"dropout=5.0 is outside \[0, 1\]"),
        ("num_layers", "2", r"num_layers='2' must be an integer"),
        ("embedding_dim", True, r"embedding_dim=True must be an integer"),
        ("dropout", float("nan"), r"dropout=nan is outside"),
    ],
)
def test_sizes_out_of_bounds_are_refused(lm_folder: Path, key: str, value, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        load_pretrained(edit(lm_folder, init_args={key: value}))
    assert str(lm_folder / "config.json") in str(info.value) and "\n" not in str(info.value)


def test_the_user_may_pass_what_the_file_may_not(lm_folder: Path) -> None:
    edit(lm_folder, init_args={"dropout": 5.0})
    assert load_pretrained(lm_folder, dropout=0.0).hparams.dropout == 0.0  # the user's word, not the file's


def test_deep_nesting_is_one_line(lm_folder: Path, tmp_path: Path) -> None:
    config = (lm_folder / "config.json").read_text()
    (lm_folder / "config.json").write_text(config.rstrip()[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SchemaError, match="nested more than 32 levels deep") as info:
        load_pretrained(lm_folder)
    assert "\n" not in str(info.value)
    nested: list = []
    for _ in range(50):
        nested = [nested]
    path = ckpt(tmp_path / "deep.ckpt", {"_class_path": FRAMES, "x": nested})
    with pytest.raises(SchemaError, match="hyper_parameters: nested more than 32 levels deep"):
        check_resume(path, FRAMES, {})


def test_an_integer_hyper_parameter_key_is_one_line(tmp_path: Path) -> None:
    torch.save(
        {
            "zoo_task": "zoo.tasks.language_model.CharLanguageModel",
            "hyper_parameters": {"vocab": VOCAB, 7: 1},
            "state_dict": tiny_lm().state_dict(),
        },
        tmp_path / "k.ckpt",
    )
    with pytest.raises(
        CheckpointError, match="'hyper_parameters' must be a dict of named values, got a dict with a key that is not a string"
    ):
        load_task(tmp_path / "k.ckpt")


def test_checkpoint_sizes_are_bounded_too(tmp_path: Path) -> None:
    model = tiny_lm()
    torch.save(
        {
            "zoo_task": "zoo.tasks.language_model.CharLanguageModel",
            "hyper_parameters": {**model.hparams, "dropout": 1e308 * 10},
            "state_dict": model.state_dict(),
        },
        tmp_path / "x.ckpt",
    )
    with pytest.raises(SchemaError, match=r"x.ckpt: init arg dropout=inf is outside \[0, 1\]"):
        load_task(tmp_path / "x.ckpt")
    path = ckpt(tmp_path / "r.ckpt", {"_class_path": FRAMES, "hidden_size": 10**9})
    with pytest.raises(SchemaError, match="hidden_size=1000000000 is outside"):
        check_resume(path, FRAMES, {"hidden_size": 64})


def test_memory_a_folder_needs_is_refused_from_its_header(tmp_path: Path, monkeypatch) -> None:
    lm_folder = tiny_lm().save_pretrained(tmp_path / "plain")
    need = sum(t.numel() for t in tiny_lm().state_dict().values()) * 4  # float32, as it is read
    monkeypatch.setenv("ZOO_MAX_LOAD_BYTES", str(need - 1))
    with pytest.raises(SchemaError, match=f"its tensors take {need:,} bytes as float32, more than the limit of {need - 1:,}"):
        load_pretrained(lm_folder)
    monkeypatch.setenv("ZOO_MAX_LOAD_BYTES", str(need))
    load_pretrained(lm_folder)  # exactly enough


def test_every_decoding_setting_is_bounded() -> None:
    for key in ("beam_size", "max_len", "max_len_a", "max_len_b", "length_penalty", "temperature", "top_k"):
        bound = BOUNDS[key]
        with pytest.raises(SchemaError):
            bound.check(key, bound.high * 10 + 1, "f")
        bound.check(key, bound.high, "f")


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> Path:
    from datamodules.tokenizers import train_translation_tokenizer
    from zoo.tasks.seq2seq import Seq2Seq

    pieces = train_translation_tokenizer(["ein hund läuft", "a dog runs"] * 3, vocab_size=40, min_frequency=1).to_str()
    torch.manual_seed(0)
    model = Seq2Seq(source_tokenizer_json=pieces, target_tokenizer_json=pieces, embedding_dim=8, hidden_size=8, log_alignments=0)
    return Path(model.eval().save_pretrained(tmp_path_factory.mktemp("mt") / "mt"))


@pytest.mark.parametrize("key, value", [("beam_size", 100_000), ("max_len_b", 10**9), ("length_penalty", 1e300)])
def test_hostile_decoding_settings_in_a_translator(translator: Path, tmp_path: Path, key: str, value, capsys) -> None:
    from zoo.cli import main

    folder = tmp_path / "mt"
    folder.mkdir()
    for file in translator.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    edit(folder, init_args={key: value})
    before = peak_mb()
    assert main(["translate", str(folder), "ein hund", "--device", "cpu"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"init arg {key}=" in line and "is outside" in line and peak_mb() - before < 200


# ---- 3. no network, no path outside the folder, on a file's word ------------------------------------
@pytest.fixture
def hub_server(monkeypatch):
    """A local stand-in for the Hugging Face Hub on 127.0.0.1 that records every request (and answers
    404); the Hub client is pointed at it, so any request a load makes lands in the list."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from huggingface_hub import constants

    seen: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server protocol
            seen.append(self.path)
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        f"http://127.0.0.1:{server.server_port}/{{repo_id}}/resolve/{{revision}}/{{filename}}",
    )
    yield seen
    server.shutdown()


@pytest.fixture
def frames_folder(tmp_path: Path) -> Path:
    from zoo.tasks.frame_classifier import FrameClassifier

    torch.manual_seed(0)
    model = FrameClassifier(label_names=["red", "blue"], encoder="test_resnet", pretrained=False, hidden_size=8, cell="gru")
    return Path(model.eval().save_pretrained(tmp_path / "frames"))


def test_pretrained_true_in_a_file_reaches_no_server(frames_folder: Path, hub_server: list) -> None:
    import timm

    edit(frames_folder, init_args={"pretrained": True, "weights_path": str(frames_folder / "nowhere.pth")})
    model = load_pretrained(frames_folder)
    assert hub_server == [] and model.hparams.pretrained is False and model.hparams.weights_path is None
    with pytest.raises(Exception):  # noqa: B017  (timm's error for a refused download varies by version) the control: the same request made on purpose does reach the server
        timm.create_model("test_resnet", pretrained=True)
    assert hub_server, "the server records requests"


@pytest.mark.parametrize("encoder", ["hf-hub:someone/repo", "local-dir:/tmp/x", "timm/test_resnet"])
def test_a_hub_encoder_named_in_a_file_is_refused(frames_folder: Path, hub_server: list, encoder: str) -> None:
    with pytest.raises(SchemaError, match="is not a timm model name; a file may not name a Hub repo or a path") as info:
        load_pretrained(edit(frames_folder, init_args={"encoder": encoder}))
    assert hub_server == [] and "\n" not in str(info.value)


def test_a_resume_checkpoint_may_not_switch_the_network_on(tmp_path: Path) -> None:
    for key, value in (("pretrained", True), ("weights_path", "/etc/passwd")):
        path = ckpt(tmp_path / "x.ckpt", {"_class_path": FRAMES, key: value})
        with pytest.raises(SchemaError, match=f"its hyper-parameter {key}=.* would make loading reach the network or the disk"):
            check_resume(path, FRAMES, {"pretrained": False})
    path = ckpt(tmp_path / "y.ckpt", {"_class_path": FRAMES, "pretrained": True})
    assert check_resume(path, FRAMES, {"pretrained": True})[0] == []  # the recipe asked for it


def test_no_key_of_a_file_is_read_as_a_path_outside_its_folder(lm_folder: Path, tmp_path: Path) -> None:
    """`../../x_vocab` would make the reader open <folder>/../../x_vocab.json: a FIFO there records
    an open (a thread waits to write to it) and the test asserts none happened."""
    import threading

    outside = lm_folder.parent.parent / "x_vocab.json"
    os.mkfifo(outside)
    opened = []
    writer = threading.Thread(target=lambda: (opened.append(open(outside, "w")), opened[0].close()), daemon=True)
    writer.start()
    edit(lm_folder, init_args={"../../x_vocab": ["a"]})
    with pytest.raises(SchemaError, match=r"init arg name '../../x_vocab' is not an identifier") as info:
        load_pretrained(lm_folder)
    assert "\n" not in str(info.value)
    writer.join(0.2)
    assert opened == [] and writer.is_alive()  # nobody opened the file outside the folder
    os.close(os.open(outside, os.O_RDONLY | os.O_NONBLOCK))  # now release the writer
    writer.join(5)


# ---- 5. inputs longer than the model reads are cut before the expensive work ------------------------
def test_a_long_source_is_cut_before_the_encoder(translator: Path, capsys) -> None:
    from zoo.cli import main
    from zoo.tasks.seq2seq import Seq2Seq

    long = "ein hund läuft " * 3400  # 10,200 words
    model = load_pretrained(translator, expected=Seq2Seq)
    short, cut = model.predict(["ein hund", long], beam_size=2)
    assert "truncated_from" not in short and cut["truncated_from"] > 10_000
    assert len(cut["source_tokens"]) == Seq2Seq.max_source_tokens
    assert len(model.predict(long, beam_size=1, max_source_tokens=300)[0]["source_tokens"]) == 300  # the user may ask for more
    assert main(["translate", str(translator), "ein hund", long, "--beam_size", "1", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    assert one_line(err).startswith(
        "zoo translate: warning: 1 sentence(s) longer than the model reads were cut to 256 source tokens (sentence 2: "
    )
