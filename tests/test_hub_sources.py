"""zoo.hub.sources: URL and Hugging Face Hub sources, against real HTTP servers on 127.0.0.1.

A static file server, and `FakeHub`, which implements just enough of the Hugging Face Hub's routes
for `HfApi.create_repo`, `HfApi.upload_folder` (regular, non-LFS uploads) and `hf_hub_download`.
Local folders and archives are covered here too (`locate`), and the registry's sources.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch

from tests.fixtures import StaticServer
from tests.hub_common import isolated_home, outputs, tiny_lm  # noqa: F401  (fixtures)
from zoo import load_pretrained
from zoo.hub import ChecksumMismatchError, MissingFileError, PretrainedError, RemoteError, UnknownModelError, locate, push_to_hub
from zoo.tasks.language_model import CharLanguageModel


# ---- URL sources ---------------------------------------------------------------------------------
@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "www"
    tiny_lm().save_pretrained(root / "tiny", dtype=torch.float16)
    server = StaticServer(root)
    yield root, server
    server.stop()


def test_url_folder_is_downloaded_verified_and_cached(served, isolated_home: Path) -> None:
    root, server = served
    model = load_pretrained(f"{server.base}/tiny")
    torch.testing.assert_close(outputs(model), outputs(tiny_lm()), atol=2e-3, rtol=2e-3)
    assert sorted(server.requests) == ["/tiny/config.json", "/tiny/model.safetensors", "/tiny/vocab.json"]
    assert list((isolated_home / "pretrained" / "url").glob("*/model.safetensors"))
    server.requests.clear()
    load_pretrained(f"{server.base}/tiny/")
    assert server.requests == ["/tiny/config.json"]  # the weights come from the cache (their sha256 pinned)


def test_url_checksum_mismatch(served) -> None:
    root, server = served
    data = bytearray((root / "tiny" / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (root / "tiny" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch"):
        load_pretrained(f"{server.base}/tiny")


def test_url_without_manifest_is_refused(served) -> None:
    root, server = served
    config = json.loads((root / "tiny" / "config.json").read_text())
    del config["files"]
    (root / "tiny" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match="no 'files' manifest"):
        load_pretrained(f"{server.base}/tiny")


def test_url_missing_file_and_server_errors(served) -> None:
    root, server = served
    (root / "tiny" / "vocab.json").unlink()
    with pytest.raises(RemoteError, match="vocab.json"):
        load_pretrained(f"{server.base}/tiny")
    with pytest.raises(RemoteError, match="config.json"):
        load_pretrained(f"{server.base}/nothing-here")


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
    model = load_pretrained(f"{server.base}/tiny.{kind}#sha256={digest}")
    torch.testing.assert_close(outputs(model), outputs(tiny_lm()), atol=2e-3, rtol=2e-3)
    server.requests.clear()
    load_pretrained(f"{server.base}/tiny.{kind}", sha256=digest)
    assert server.requests == []  # pinned: served from the cache
    with pytest.raises(ChecksumMismatchError):
        load_pretrained(f"{server.base}/tiny.{kind}#sha256={'0' * 64}")
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
                    return self.send(
                        404, headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, head=head
                    )
                commit = fake.repos[repo]["refs"].get(rev, rev)
                files = fake.repos[repo]["commits"].get(commit)
                if files is None:
                    return self.send(
                        404, headers={"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, head=head
                    )
                if name not in files:
                    return self.send(
                        404,
                        headers={"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found", "X-Repo-Commit": commit},
                        head=head,
                    )
                data = files[name]
                self.send(
                    200,
                    data,
                    {
                        "X-Repo-Commit": commit,
                        "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                        "Content-Type": "application/octet-stream",
                    },
                    head=head,
                )

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
                    return self.send_json(
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
                    )
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    repo, rev = "/".join(parts[2:4]), parts[5]
                    state = fake.repos[repo]
                    files = dict(state["commits"].get(state["refs"].get(rev), {}))
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    commit = hashlib.sha1(
                        repr(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())).encode()
                    ).hexdigest()
                    state["commits"][commit] = files
                    state["refs"][rev] = commit
                    return self.send_json(
                        {"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{commit}", "commitOid": commit}
                    )
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
    info = push_to_hub(model, "alice/tiny-lm", endpoint=fake_hub.endpoint, token="hf_test", dtype=torch.float16)
    assert set(fake_hub.repos["alice/tiny-lm"]["commits"][info.oid]) == {"config.json", "model.safetensors", "vocab.json"}
    loaded = load_pretrained("alice/tiny-lm", endpoint=fake_hub.endpoint)
    torch.testing.assert_close(outputs(loaded), outputs(model), atol=2e-3, rtol=2e-3)
    assert list((isolated_home / "hub").glob("models--alice--tiny-lm/snapshots/*/model.safetensors"))
    # hf:// prefix and @revision; a pinned commit downloads nothing new
    fake_hub.log.clear()
    load_pretrained(f"hf://alice/tiny-lm@{info.oid}", endpoint=fake_hub.endpoint)
    assert not [entry for entry in fake_hub.log if entry[0] == "GET"]


def test_hub_errors(fake_hub: FakeHub) -> None:
    push_to_hub(tiny_lm(), "alice/tiny-lm", endpoint=fake_hub.endpoint, token="hf_test")
    with pytest.raises(UnknownModelError, match="Hub has no repo 'alice/nothing'"):
        load_pretrained("alice/nothing", endpoint=fake_hub.endpoint)
    with pytest.raises(RemoteError, match="no revision 'v9'"):
        load_pretrained("alice/tiny-lm@v9", endpoint=fake_hub.endpoint)
    # a corrupted blob on the server: the manifest's sha256 catches it
    state = fake_hub.repos["alice/tiny-lm"]
    files = state["commits"][state["refs"]["main"]]
    files["model.safetensors"] = files["model.safetensors"][:-1] + bytes([files["model.safetensors"][-1] ^ 0xFF])
    fake_hub.repos["bob/corrupt"] = {"refs": {"main": "c" * 40}, "commits": {"c" * 40: files}}
    with pytest.raises(ChecksumMismatchError, match="model.safetensors: sha256"):
        load_pretrained("bob/corrupt", endpoint=fake_hub.endpoint)


# ---- locate: what each kind of name becomes ------------------------------------------------------
def test_locate_returns_local_folders(tmp_path: Path) -> None:
    from zoo.hub import model_entry

    assert locate("char_lstm_shakespeare") == model_entry("char_lstm_shakespeare").package_dir
    folder = tiny_lm().save_pretrained(tmp_path / "tiny")
    assert locate(folder) == folder and locate(str(folder)) == folder
    with pytest.raises(MissingFileError, match="no such file or folder"):
        locate("./char_lstm_shakespeare")  # "./name" is a path, never the registered name
    with pytest.raises(UnknownModelError, match="Did you mean 'imdb_bilstm'"):
        locate("imdb_bilstn")


def test_a_registered_name_is_checked_against_its_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.hub.registry as registry

    shipped = tmp_path / "pretrained"
    tiny_lm().save_pretrained(shipped / "char_lstm_shakespeare")  # other weights under a registered name
    monkeypatch.setattr(registry, "PACKAGE_DIR", shipped)
    with pytest.raises(ChecksumMismatchError, match="on the model card"):
        locate("char_lstm_shakespeare")
