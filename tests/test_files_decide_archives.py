"""Issue 28, case 4: archive and download limits a file cannot walk around. Tar header blocks (PAX,
GNU long names) are counted before tarfile reads them, archives have a member limit, pretrained
archives their own small limits and nothing left on disk after a refusal, and a download stops at
the size the manifest declares (a 127.0.0.1 server counts the bytes it managed to send)."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from datamodules.download import DownloadError, UnsafeArchiveError, extract, fetch
from tests.hub_common import isolated_home, tiny_lm  # noqa: F401  (fixture)
from zoo.hub import PretrainedError, RemoteError, locate
from zoo.hub.sources import MAX_ARCHIVE_MEMBERS


def one_line(error: BaseException) -> str:
    assert "\n" not in str(error), str(error)
    return str(error)


def hostile_tar(path: Path, kind: bytes, size: int) -> Path:
    """A tar.gz whose first block is a header member (``kind``: PAX ``x`` or GNU long name ``L``)
    declaring ``size`` bytes, streamed as zeros (compresses to almost nothing), then one small file."""
    info = tarfile.TarInfo("././@PaxHeader" if kind == tarfile.XHDTYPE else "././@LongLink")
    info.type, info.size = kind, size
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(info.tobuf(format=tarfile.GNU_FORMAT if kind == tarfile.GNUTYPE_LONGNAME else tarfile.USTAR_FORMAT))
        zeros = bytes(1 << 20)
        left = size + (-size % 512)
        while left:
            out.write(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))
        small = tarfile.TarInfo("a.txt")
        small.size = 1
        out.write(small.tobuf() + b"a" + bytes(511) + bytes(1024))
    return path


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME], ids=["pax", "gnu-long-name"])
def test_tar_header_blocks_count_before_they_are_read(tmp_path: Path, kind: bytes) -> None:
    archive = hostile_tar(tmp_path / "h.tar.gz", kind, 3 << 20)
    with pytest.raises(UnsafeArchiveError, match=r"its members hold more than 1,000,000 bytes \(at least 3,145,728\)") as info:
        extract(archive, tmp_path / "out", max_bytes=1_000_000)
    one_line(info.value)
    with pytest.raises(
        UnsafeArchiveError, match=r"a header block \(PAX or GNU long name\) of 3,145,728 bytes, more than 1,048,576"
    ):
        extract(archive, tmp_path / "out")  # under the default 64 GiB too: no real header is 3 MB
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path) == ["h.tar.gz"]  # no temporary folder left


def _tar(path: Path, names) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


def _zip(path: Path, names) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, b"x")
    return path


@pytest.mark.parametrize("make", [_tar, _zip], ids=["tar", "zip"])
def test_member_count_limit(tmp_path: Path, make) -> None:
    archive = make(tmp_path / ("m.tar.gz" if make is _tar else "m.zip"), [f"f{i}" for i in range(51)])
    with pytest.raises(UnsafeArchiveError, match="it holds more than 50 members, the limit") as info:
        extract(archive, tmp_path / "out", max_members=50)
    one_line(info.value)
    assert not (tmp_path / "out").exists()
    assert len(os.listdir(extract(archive, tmp_path / "ok", max_members=51))) == 52  # and the marker


@pytest.mark.parametrize("make", [_tar, _zip], ids=["tar", "zip"])
@pytest.mark.parametrize(
    "name, what",
    [
        ("d/" + "n" * 300, "a path part longer than 255 bytes"),
        ("/".join(["p" * 200] * 30), "a name of 6,029 bytes, more than 4096"),
    ],
)
def test_names_too_long_for_the_file_system_are_one_line(tmp_path: Path, make, name: str, what: str) -> None:
    archive = make(tmp_path / ("n.tar.gz" if make is _tar else "n.zip"), [name])
    with pytest.raises(UnsafeArchiveError, match=f"has {what}") as info:
        extract(archive, tmp_path / "out")
    assert len(one_line(info.value)) < 400 and not (tmp_path / "out").exists()


def test_a_pretrained_archive_has_its_own_member_limit(tmp_path: Path, isolated_home: Path) -> None:
    folder = tiny_lm().save_pretrained(tmp_path / "lm")
    archive = _zip(tmp_path / "lm.zip", [f"lm/junk{i}" for i in range(MAX_ARCHIVE_MEMBERS)])
    with zipfile.ZipFile(archive, "a") as zf:
        for file in folder.iterdir():
            zf.write(file, f"lm/{file.name}")
    with pytest.raises(UnsafeArchiveError, match=f"more than {MAX_ARCHIVE_MEMBERS:,} members"):
        locate(archive)
    extracted = isolated_home / "pretrained" / "extracted"
    assert not extracted.exists() or os.listdir(extracted) == []


def test_a_refused_pretrained_archive_leaves_nothing_on_disk(tmp_path: Path, isolated_home: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.bin", bytes(20 << 20))  # 20 MB of zeros in 20 kB, and no config.json
    with pytest.raises(PretrainedError, match="no config.json at the top of the archive") as info:
        locate(archive)
    one_line(info.value)
    assert os.listdir(isolated_home / "pretrained" / "extracted") == []


# ---- downloads ---------------------------------------------------------------------------------------
class Sender:
    """A 127.0.0.1 server whose routes serve ``(headers, body size)``: the body streamed as zeros in
    64 KiB writes; ``sent[path]`` counts the bytes the client took before it hung up."""

    def __init__(self) -> None:
        self.routes, self.sent = {}, {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):  # noqa: N802
                if self.path not in outer.routes:
                    self.send_error(404)
                    return
                body, declare = outer.routes[self.path]
                self.send_response(200)
                if declare:
                    self.send_header("Content-Length", str(len(body) if isinstance(body, bytes) else body))
                self.end_headers()
                outer.sent[self.path] = 0
                if isinstance(body, bytes):
                    self.wfile.write(body)
                    outer.sent[self.path] = len(body)
                    return
                chunk = bytes(1 << 16)
                try:
                    while outer.sent[self.path] < body:
                        self.wfile.write(chunk)
                        outer.sent[self.path] += len(chunk)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"


@pytest.fixture
def sender():
    srv = Sender()
    yield srv
    srv.server.shutdown()


BIG = 200 << 20  # 200 MiB offered; the client must take far less


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "no-length"])
def test_a_download_stops_at_the_declared_size(sender: Sender, tmp_path: Path, declare: bool) -> None:
    sender.routes["/big.bin"] = (BIG, declare)
    with pytest.raises(DownloadError, match="declares 209,715,200 bytes" if declare else "runs past the 1,000 bytes") as info:
        fetch(sender.url("/big.bin"), None, folder=tmp_path, progress=False, timeout=5, max_bytes=1000)
    one_line(info.value)
    assert os.listdir(tmp_path) == []
    sender.server.shutdown()  # the handler's last write returns once the socket is closed
    assert sender.sent["/big.bin"] < 32 << 20  # socket buffers at most, not the body


def test_a_manifest_size_bounds_the_weights_download(sender: Sender, tmp_path: Path, isolated_home: Path) -> None:
    folder = tiny_lm().save_pretrained(tmp_path / "lm")
    config = json.loads((folder / "config.json").read_text())
    for name in config["files"]:
        if name != "model.safetensors":
            sender.routes[f"/lm/{name}"] = ((folder / name).read_bytes(), True)
    sender.routes["/lm/config.json"] = ((folder / "config.json").read_bytes(), True)
    sender.routes["/lm/model.safetensors"] = (BIG, False)  # a server that sends more than the manifest says
    with pytest.raises(
        RemoteError, match=f"runs past the {config['files']['model.safetensors']['size']:,} bytes expected"
    ) as info:
        locate(sender.url("/lm"))
    one_line(info.value)
    assert not any(p.name.startswith("model.safetensors") for p in isolated_home.rglob("*"))
    config["files"]["model.safetensors"]["size"] = "huge"
    sender.routes["/lm/config.json"] = (json.dumps(config).encode(), True)
    with pytest.raises(PretrainedError, match=r"manifest entry 'model.safetensors' must declare its 'size' in bytes"):
        locate(sender.url("/lm"))
