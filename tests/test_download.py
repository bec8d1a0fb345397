"""Tests for datamodules.download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from datamodules.download import (
    EXTRACTED_MARKER,
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    data_dir,
    extract,
    fetch,
    zoo_home,
)
from tests.fixtures import StaticServer as Server  # noqa: E402

PAYLOAD = b"zoo test payload\n" * 1000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "srv"
    root.mkdir()
    srv = Server(root)
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _isolated_home(zoo_home_env: Path) -> Path:
    return zoo_home_env


@pytest.fixture
def dl(tmp_path: Path) -> Path:
    folder = tmp_path / "dl"
    folder.mkdir()
    return folder


# ----------------------------------------------------------------------------- fetch


def test_fetch_downloads_and_verifies(server: Server, dl: Path) -> None:
    url = server.add("data.bin", PAYLOAD)
    path = fetch(url, sha(PAYLOAD), folder=dl, progress=False)
    assert path == dl.resolve() / "data.bin"
    assert path.read_bytes() == PAYLOAD
    assert sorted(os.listdir(dl)) == ["data.bin"]  # no temp file left over
    assert server.requests == ["/data.bin"]


def test_fetch_accepts_prefixed_hash_and_filename(server: Server, dl: Path) -> None:
    url = server.add("data.bin", PAYLOAD)
    path = fetch(url, "sha256:" + sha(PAYLOAD).upper(), filename="renamed.bin", folder=dl, progress=False)
    assert path.name == "renamed.bin" and path.read_bytes() == PAYLOAD


def test_fetch_rejects_malformed_hash_before_downloading(server: Server, dl: Path) -> None:
    url = server.add("data.bin", PAYLOAD)
    with pytest.raises(ValueError, match="sha256"):
        fetch(url, "abc123", folder=dl, progress=False)
    assert server.requests == []


def test_fetch_cache_hit_needs_no_network(server: Server, dl: Path) -> None:
    url = server.add("data.bin", PAYLOAD)
    first = fetch(url, sha(PAYLOAD), folder=dl, progress=False)
    mtime = first.stat().st_mtime_ns
    server.stop()  # any network access now fails with DownloadError
    second = fetch(url, sha(PAYLOAD), folder=dl, progress=False)
    assert second == first
    assert second.stat().st_mtime_ns == mtime
    assert server.requests == ["/data.bin"]


def test_fetch_without_hash_reuses_present_file(server: Server, dl: Path) -> None:
    url = server.add("user.bin", PAYLOAD)
    path = fetch(url, None, folder=dl, progress=False)
    assert path.read_bytes() == PAYLOAD
    server.stop()
    assert fetch(url, None, folder=dl, progress=False) == path


def test_fetch_checksum_mismatch_leaves_nothing(server: Server, dl: Path) -> None:
    url = server.add("corrupt.bin", PAYLOAD)
    wrong = sha(b"what the file should have been")
    with pytest.raises(ChecksumError) as info:
        fetch(url, wrong, folder=dl, progress=False)
    msg = str(info.value)
    assert url in msg and wrong in msg and sha(PAYLOAD) in msg
    assert "removed" in msg
    assert isinstance(info.value, RuntimeError)
    assert os.listdir(dl) == []  # neither the file nor pooch's temp file


def test_fetch_replaces_stale_cached_file(server: Server, dl: Path) -> None:
    url = server.add("data.bin", PAYLOAD)
    (dl / "data.bin").write_bytes(b"stale, truncated")
    path = fetch(url, sha(PAYLOAD), folder=dl, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/data.bin"]


def test_fetch_stale_file_and_bad_server_leaves_nothing(server: Server, dl: Path) -> None:
    url = server.add("data.bin", b"server serves garbage too")
    (dl / "data.bin").write_bytes(b"stale, truncated")
    with pytest.raises(ChecksumError):
        fetch(url, sha(PAYLOAD), folder=dl, progress=False)
    assert os.listdir(dl) == []


def test_fetch_404_raises_download_error(server: Server, dl: Path) -> None:
    url = server.url("missing.tar.gz")
    with pytest.raises(DownloadError) as info:
        fetch(url, sha(PAYLOAD), folder=dl, progress=False)
    msg = str(info.value)
    assert url in msg
    assert "404" in msg
    assert str(dl.resolve() / "missing.tar.gz") in msg  # where to place it by hand
    assert os.listdir(dl) == []


def test_fetch_server_down_raises_download_error(server: Server, dl: Path) -> None:
    url = server.add("data.bin", PAYLOAD)
    server.stop()
    with pytest.raises(DownloadError, match="127.0.0.1"):
        fetch(url, sha(PAYLOAD), folder=dl, progress=False)
    assert os.listdir(dl) == []


def test_fetch_progress_bar_follows_flag_and_tty(server: Server, dl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    url = server.add("data.bin", PAYLOAD)
    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    fetch(url, sha(PAYLOAD), filename="a.bin", folder=dl, progress=False)
    assert "100%" not in err.getvalue()
    fetch(url, sha(PAYLOAD), filename="b.bin", folder=dl)  # default: on, since "TTY"
    assert "100%" in err.getvalue()

    plain = io.StringIO()  # not a TTY: default off
    monkeypatch.setattr(sys, "stderr", plain)
    fetch(url, sha(PAYLOAD), filename="c.bin", folder=dl)
    assert "100%" not in plain.getvalue()


def test_zoo_home_respected(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "custom_home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    assert zoo_home() == home and home.is_dir()
    assert data_dir() == home / "data"
    url = server.add("data.bin", PAYLOAD)
    assert fetch(url, sha(PAYLOAD), progress=False) == home.resolve() / "data" / "data.bin"


def test_zoo_home_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZOO_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "fakehome"))
    assert zoo_home() == tmp_path / "fakehome" / ".cache" / "zoo"
    assert data_dir() == tmp_path / "fakehome" / ".cache" / "zoo" / "data"


# --------------------------------------------------------------------------- extract


FILES = {"top.txt": b"top\n", "sub/inner.txt": b"inner\n", "sub/deeper/x.bin": bytes(range(256))}


def make_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != EXTRACTED_MARKER}


@pytest.mark.parametrize("kind", ["tar.gz", "tgz", "zip"])
def test_extract_normal_and_idempotent(tmp_path: Path, kind: str) -> None:
    make = make_zip if kind == "zip" else make_tar
    archive = make(tmp_path / f"a.{kind}", FILES)
    dest = tmp_path / "out" / "a"
    assert extract(archive, dest) == dest
    assert read_tree(dest) == FILES
    assert (dest / EXTRACTED_MARKER).is_file()
    assert sorted(os.listdir(dest.parent)) == ["a"]  # temp folder renamed away

    # Second call: marker present, so nothing is re-extracted (a changed file stays).
    (dest / "top.txt").write_bytes(b"edited")
    archive.unlink()  # would fail if it tried to read the archive again
    assert extract(archive, dest) == dest
    assert (dest / "top.txt").read_bytes() == b"edited"


def test_extract_refuses_unmarked_nonempty_dest(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", FILES)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        extract(archive, dest)
    assert os.listdir(dest) == ["mine.txt"]


def _tar_with(path: Path, build) -> Path:
    with tarfile.open(path, "w") as tar:
        # A harmless member first, so a half-done extraction would be visible.
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        build(tar)
    return path


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"evil") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink_etc", "symlink_write_through"])
def test_extract_tar_refuses_unsafe_members(tmp_path: Path, case: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()

    def build(tar: tarfile.TarFile) -> None:
        if case == "dotdot":
            _file(tar, "../evil")
        elif case == "absolute":
            _file(tar, str(outside / "abs_evil"))
        elif case == "symlink_etc":
            # No write-through member here: a broken extractor run as root would
            # really write into /etc. `symlink_write_through` covers that, safely.
            _symlink(tar, "etc", "/etc")
        else:
            _symlink(tar, "link", str(outside))
            _file(tar, "link/through_link")

    archive = _tar_with(work / "bad.tar", build)
    dest = work / "dest"
    with pytest.raises(UnsafeArchiveError) as info:
        extract(archive, dest)
    assert str(archive) in str(info.value)
    bad_member = {"dotdot": "../evil", "absolute": "abs_evil", "symlink_etc": "etc", "symlink_write_through": "link"}[case]
    assert bad_member in str(info.value)
    assert isinstance(info.value, ValueError)
    # Nothing outside, no dest, no leftover temp folder.
    assert os.listdir(outside) == []
    assert sorted(os.listdir(work)) == ["bad.tar"]
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("name", ["../evil", "/abs_evil", "a/../../evil"])
def test_extract_zip_refuses_escaping_members(tmp_path: Path, name: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    archive = make_zip(work / "bad.zip", {"ok.txt": b"ok", name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match="unsafe member") as info:
        extract(archive, work / "dest")
    assert name in str(info.value)
    assert sorted(os.listdir(work)) == ["bad.zip"]
    assert not (tmp_path / "evil").exists()


def test_extract_zip_refuses_symlink_entry(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        info = zipfile.ZipInfo("etc")
        info.external_attr = 0o120777 << 16  # S_IFLNK | 0777, as `zip -y` stores it
        zf.writestr(info, "/etc")
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        extract(archive, tmp_path / "dest")
    assert sorted(os.listdir(tmp_path)) == ["link.zip"]


def test_fetch_then_extract(server: Server, dl: Path, tmp_path: Path) -> None:
    data = make_tar(tmp_path / "ds.tar.gz", FILES).read_bytes()
    url = server.add("ds.tar.gz", data)
    archive = fetch(url, sha(data), folder=dl, progress=False)
    assert read_tree(extract(archive, dl / "ds")) == FILES
