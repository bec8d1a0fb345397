"""zoo.hub: registry, the pretrained folder format, its four sources, bad input, and the shipped models.

The URL and Hub sources are tested against real HTTP servers on 127.0.0.1: a static file server, and
`FakeHub`, which implements just enough of the Hugging Face Hub's routes for `HfApi.create_repo`,
`HfApi.upload_folder` (regular, non-LFS uploads) and `hf_hub_download`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import pickle
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch

from zoo import hub
from zoo.hub import (
    ChecksumMismatchError, FormatVersionError, MissingFileError, NoWeightsError, PickleRefusedError,
    PretrainedError, UnknownModelError, create_model, list_models, load_pretrained,
)
from zoo.tasks.language_model import CharLanguageModel

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
VOCAB = ["<unk>", "\n", " ", "a", "b", "c", "d", "e", "é"]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches under its own ZOO_HOME and never sees the user's Hugging Face config."""
    home = tmp_path / "zoo_home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


def tiny_lm(seed: int = 0) -> CharLanguageModel:
    torch.manual_seed(seed)
    return CharLanguageModel(vocab=VOCAB, embedding_dim=8, hidden_size=16, dropout=0.1).eval()


def outputs(model: CharLanguageModel) -> torch.Tensor:
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        return model(ids)[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tiny_lm().save_pretrained(tmp_path / "tiny")


# ---- registry ------------------------------------------------------------------------------------
def test_registry_lists_and_filters() -> None:
    names = list_models()
    assert {"char_lstm_shakespeare", "imdb_bigru", "imdb_bilstm", "multi30k_de_en_attn_gru"} <= set(names)
    assert names == sorted(names)
    assert list_models("*lstm*") == [n for n in names if "lstm" in n]
    assert set(list_models(pretrained=True)) <= set(names)
    for name in list_models(pretrained=True):
        assert hub.model_entry(name).has_weights


def test_create_model_builds_the_config_with_overrides() -> None:
    model = create_model("char_lstm_shakespeare", vocab=VOCAB, hidden_size=32)
    assert isinstance(model, CharLanguageModel)
    assert model.hparams.cell == "lstm" and model.hparams.hidden_size == 32 and model.vocab == VOCAB
    with pytest.raises(PretrainedError, match="no argument hiddn_size.*hidden_size"):
        create_model("char_lstm_shakespeare", hiddn_size=32)


def test_unknown_name_suggests_the_closest() -> None:
    for call in (lambda: create_model("char_lstm_shakspeare"), lambda: load_pretrained("char_lstm_shakspeare")):
        with pytest.raises(UnknownModelError, match="Did you mean 'char_lstm_shakespeare'"):
            call()
    with pytest.raises(KeyError):  # also a KeyError (and a ValueError): what the CLI catches
        create_model("imdb_lstm")


def test_registered_without_weights_says_so() -> None:
    unshipped = [n for n in list_models() if not hub.model_entry(n).has_weights]
    if not unshipped:
        pytest.skip("every registered model ships weights")
    with pytest.raises(NoWeightsError, match=rf"no pretrained weights for '{unshipped[0]}'.*create_model\('{unshipped[0]}'\)"):
        create_model(unshipped[0], pretrained=True)


# ---- the format ----------------------------------------------------------------------------------
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

    from datamodules.tokenizers import train_tokenizer
    from zoo.tasks.classifier import SequenceClassifier

    texts = ["a wonderful moving film", "a dull and tedious mess", "wonderful acting", "tedious plot"]
    torch.manual_seed(0)
    model = SequenceClassifier(train_tokenizer(texts, vocab_size=100, min_frequency=1).to_str(), ["neg", "pos"],
                               embedding_dim=8, hidden_size=6).eval()
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


def test_overrides_and_expected_class(folder: Path) -> None:
    assert load_pretrained(folder, dropout=0.0).hparams.dropout == 0.0
    with pytest.raises(PretrainedError, match="does not fit.*shape mismatch"):
        load_pretrained(folder, hidden_size=32)

    class Other(CharLanguageModel):
        pass

    with pytest.raises(PretrainedError, match="not a Other"):
        Other.from_pretrained(folder)


def test_export_command_turns_a_checkpoint_into_a_folder(tmp_path: Path) -> None:
    from zoo.cli import main

    model = tiny_lm()
    ckpt = tmp_path / "model.ckpt"
    # What Lightning writes, reduced to the keys load_task reads.
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": {**model.hparams, "_class_path": "x"},
                "zoo_task": "zoo.tasks.language_model.CharLanguageModel"}, ckpt)
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "out"), "--fp16"]) == 0
    loaded = load_pretrained(tmp_path / "out")
    assert "_class_path" not in json.loads((tmp_path / "out" / "config.json").read_text())["init_args"]
    torch.testing.assert_close(outputs(loaded), outputs(model), atol=2e-3, rtol=2e-3)


def test_zoo_sample_loads_a_folder_or_says_what_is_wrong(folder: Path, capsys) -> None:
    from zoo.cli import main

    assert main(["sample", str(folder), "--prime", "ab", "--length", "20", "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("ab")
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "char_lstm_shakspeare"])
    assert exit_info.value.code == 2
    assert "Did you mean 'char_lstm_shakespeare'" in capsys.readouterr().err


# ---- bad input -----------------------------------------------------------------------------------
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
    with pytest.raises(FormatVersionError, match=f"format_version {version!r}.*reads format_version 1"
                       + (": it comes from a newer zoo: upgrade" if version == 2 else "")):
        load_pretrained(folder)


def test_broken_config_json_names_the_line(folder: Path) -> None:
    (folder / "config.json").write_text('{\n  "format_version": 1,\n  "task": oops\n}')
    with pytest.raises(PretrainedError, match=r"config.json:3:\d+: not valid JSON"):
        load_pretrained(folder)


def test_config_naming_a_non_task_is_refused(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["task"] = "os.system"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match="'os.system' is not a LightningModule class"):
        load_pretrained(folder)
    config["task"] = "antigravity.Model"  # importing it would open a web browser
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match="module 'antigravity' is not imported: import it first if you trust it"):
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


def test_export_of_a_malicious_checkpoint_fails_cleanly(tmp_path: Path, capsys) -> None:
    from zoo.cli import main

    marker = tmp_path / "unpickled"
    (tmp_path / "evil.ckpt").write_bytes(evil_pickle(marker))
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--ckpt", str(tmp_path / "evil.ckpt"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "zoo export: error" in capsys.readouterr().err
    assert not marker.exists()


# ---- URL sources ---------------------------------------------------------------------------------
class StaticServer:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "www"
    tiny_lm().save_pretrained(root / "tiny", dtype=torch.float16)
    server = StaticServer(root)
    yield root, server
    server.close()


def test_url_folder_is_downloaded_verified_and_cached(served, isolated_home: Path) -> None:
    root, server = served
    model = load_pretrained(f"{server.url}/tiny")
    torch.testing.assert_close(outputs(model), outputs(tiny_lm()), atol=2e-3, rtol=2e-3)
    assert sorted(server.requests) == ["/tiny/config.json", "/tiny/model.safetensors", "/tiny/vocab.json"]
    assert list((isolated_home / "pretrained" / "url").glob("*/model.safetensors"))
    server.requests.clear()
    load_pretrained(f"{server.url}/tiny/")
    assert server.requests == ["/tiny/config.json"]  # the weights come from the cache (their sha256 pinned)


def test_url_checksum_mismatch(served) -> None:
    root, server = served
    data = bytearray((root / "tiny" / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (root / "tiny" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch"):
        load_pretrained(f"{server.url}/tiny")


def test_url_without_manifest_is_refused(served) -> None:
    root, server = served
    config = json.loads((root / "tiny" / "config.json").read_text())
    del config["files"]
    (root / "tiny" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match="no 'files' manifest"):
        load_pretrained(f"{server.url}/tiny")


def test_url_missing_file_and_server_errors(served) -> None:
    root, server = served
    (root / "tiny" / "vocab.json").unlink()
    with pytest.raises(hub.RemoteError, match="vocab.json"):
        load_pretrained(f"{server.url}/tiny")
    with pytest.raises(hub.RemoteError, match="config.json"):
        load_pretrained(f"{server.url}/nothing-here")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_url_archive_pinned(served, kind: str) -> None:
    root, server = served
    archive = root / f"tiny.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for path in (root / "tiny").iterdir():
                zf.write(path, f"tiny/{path.name}")
    else:
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(root / "tiny", "tiny")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    model = load_pretrained(f"{server.url}/tiny.{kind}#sha256={digest}")
    torch.testing.assert_close(outputs(model), outputs(tiny_lm()), atol=2e-3, rtol=2e-3)
    server.requests.clear()
    load_pretrained(f"{server.url}/tiny.{kind}", sha256=digest)
    assert server.requests == []  # pinned: served from the cache
    with pytest.raises(ChecksumMismatchError):
        load_pretrained(f"{server.url}/tiny.{kind}#sha256={'0' * 64}")
    assert isinstance(load_pretrained(archive), CharLanguageModel)  # a local archive works too


# ---- Hugging Face Hub source ---------------------------------------------------------------------
class FakeHub:
    """The Hub routes the client uses, over repos held in memory ({repo: {"refs", "commits"}}):
    POST /api/repos/create, POST /api/models/{repo}/preupload/{rev} (everything "regular"),
    POST /api/models/{repo}/commit/{rev} (ndjson, base64 file contents), and HEAD/GET
    /{repo}/resolve/{rev}/{file} with the X-Repo-Commit and ETag headers hf_hub_download requires
    (errors via X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound)."""

    def __init__(self) -> None:
        self.repos: dict = {}
        self.log: list = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def send(self, code: int, body: bytes = b"", headers=None, head: bool = False) -> None:
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def send_json(self, obj) -> None:
                self.send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

            def do_HEAD(self) -> None:
                self.resolve(head=True)

            def do_GET(self) -> None:
                self.resolve(head=False)

            def resolve(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                fake.log.append((self.command, path))
                parts = path.strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self.send(404, head=head)
                repo, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if repo not in fake.repos:
                    return self.send(404, headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, head=head)
                commit = fake.repos[repo]["refs"].get(rev, rev)
                files = fake.repos[repo]["commits"].get(commit)
                if files is None:
                    return self.send(404, headers={"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, head=head)
                if name not in files:
                    return self.send(404, headers={"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                                                   "X-Repo-Commit": commit}, head=head)
                data = files[name]
                self.send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                      "Content-Type": "application/octet-stream"}, head=head)

            def do_POST(self) -> None:
                path = unquote(urlparse(self.path).path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.log.append(("POST", path))
                parts = path.strip("/").split("/")
                if path == "/api/repos/create":
                    request = json.loads(body)
                    repo = request["name"] if "/" in request["name"] else f"{request.get('organization')}/{request['name']}"
                    fake.repos.setdefault(repo, {"refs": {}, "commits": {}})
                    return self.send_json({"url": f"http://{self.headers['Host']}/{repo}", "name": repo})
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    return self.send_json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    repo, rev = "/".join(parts[2:4]), parts[5]
                    state = fake.repos[repo]
                    files = dict(state["commits"].get(state["refs"].get(rev), {}))
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    commit = hashlib.sha1(repr(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())).encode()).hexdigest()
                    state["commits"][commit] = files
                    state["refs"][rev] = commit
                    return self.send_json({"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{commit}", "commitOid": commit})
                self.send(404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_hub():
    server = FakeHub()
    yield server
    server.close()


def test_push_to_hub_then_load_from_hub(fake_hub: FakeHub, isolated_home: Path) -> None:
    model = tiny_lm()
    info = hub.push_to_hub(model, "alice/tiny-lm", endpoint=fake_hub.endpoint, token="hf_test", dtype=torch.float16)
    assert set(fake_hub.repos["alice/tiny-lm"]["commits"][info.oid]) == {"config.json", "model.safetensors", "vocab.json"}
    loaded = load_pretrained("alice/tiny-lm", endpoint=fake_hub.endpoint)
    torch.testing.assert_close(outputs(loaded), outputs(model), atol=2e-3, rtol=2e-3)
    assert list((isolated_home / "hub").glob("models--alice--tiny-lm/snapshots/*/model.safetensors"))
    # hf:// prefix and @revision; a pinned commit downloads nothing new
    fake_hub.log.clear()
    load_pretrained(f"hf://alice/tiny-lm@{info.oid}", endpoint=fake_hub.endpoint)
    assert not [entry for entry in fake_hub.log if entry[0] == "GET"]


def test_hub_errors(fake_hub: FakeHub) -> None:
    hub.push_to_hub(tiny_lm(), "alice/tiny-lm", endpoint=fake_hub.endpoint, token="hf_test")
    with pytest.raises(UnknownModelError, match="Hub has no repo 'alice/nothing'"):
        load_pretrained("alice/nothing", endpoint=fake_hub.endpoint)
    with pytest.raises(hub.RemoteError, match="no revision 'v9'"):
        load_pretrained("alice/tiny-lm@v9", endpoint=fake_hub.endpoint)
    # a corrupted blob on the server: the manifest's sha256 catches it
    state = fake_hub.repos["alice/tiny-lm"]
    files = state["commits"][state["refs"]["main"]]
    files["model.safetensors"] = files["model.safetensors"][:-1] + bytes([files["model.safetensors"][-1] ^ 0xFF])
    fake_hub.repos["bob/corrupt"] = {"refs": {"main": "c" * 40}, "commits": {"c" * 40: files}}
    with pytest.raises(ChecksumMismatchError, match="model.safetensors: sha256"):
        load_pretrained("bob/corrupt", endpoint=fake_hub.endpoint)


# ---- docs ----------------------------------------------------------------------------------------
def test_docs_table_is_generated_from_the_registry() -> None:
    docs = (REPO / "docs" / "pretrained.md").read_text(encoding="utf-8")
    generated = docs.split("<!-- BEGIN GENERATED: python -m zoo.pretrained --markdown -->\n")[1].split("<!-- END GENERATED -->")[0]
    assert generated == hub.models_markdown(), "docs/pretrained.md is stale: python -m zoo.pretrained --update-docs docs/pretrained.md"


# ---- the shipped models --------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads spin-wait behind other
    processes (a 0.6 s check took 14 s); the numbers do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SHIPPED = [name for name in list_models() if (hub.model_entry(name).package_dir / "config.json").is_file()]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_match_their_card(name: str) -> None:
    entry = hub.model_entry(name)
    card, weights = entry.card, entry.package_dir / "model.safetensors"
    assert weights.stat().st_size == card.size
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card.sha256
    assert sum(f.stat().st_size for f in entry.package_dir.iterdir()) <= 5 * 2**20
    model = create_model(name, pretrained=True)
    assert sum(p.numel() for p in model.parameters()) == card.params
    # the registered configuration is the shipped one (apart from the data-derived vocab/tokenizer)
    config = json.loads((entry.package_dir / "config.json").read_text())
    assert config["task"] == entry.config().task
    for key, value in entry.config().init_args.items():
        assert config["init_args"][key] == value, key


def test_shipped_char_lstm_rechecks_its_number(one_thread) -> None:
    if "char_lstm_shakespeare" not in SHIPPED:
        pytest.skip("char_lstm_shakespeare weights are not shipped")
    corpus = SHARED_DATA / "tinyshakespeare" / "input.txt"
    if not corpus.is_file():
        pytest.skip(f"real data not available: {corpus} is absent")
    card = hub.model_entry("char_lstm_shakespeare").card
    model = load_pretrained("char_lstm_shakespeare")
    check = card.slice_check
    result = hub.score_char_lm(model, str(corpus), max_windows=check["max_windows"])
    assert result["characters"] == check["characters"]
    assert result["val_loss"] == pytest.approx(check["val_loss"], abs=1e-3)
    text = model.generate("ROMEO:", 200, temperature=0.5, seed=0)
    assert text.startswith("ROMEO:") and len(text) == 206


@pytest.mark.parametrize("name", ["imdb_bigru", "imdb_bilstm"])
def test_shipped_imdb_rechecks_its_number(name: str, one_thread) -> None:
    if name not in SHIPPED:
        pytest.skip(f"{name} weights are not shipped")
    archive = SHARED_DATA / "imdb" / "aclImdb_dev.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real data not available: {archive} is absent")
    check = hub.model_entry(name).card.slice_check
    model = load_pretrained(name)
    result = hub.score_classifier(model, *hub.imdb_test_reviews(archive, per_label=check["per_label"]))
    assert result["reviews"] == 2 * check["per_label"]
    assert result["test_acc"] == pytest.approx(check["test_acc"], abs=1e-9)
