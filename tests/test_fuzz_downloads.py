"""Downloads that go wrong, against a real HTTP server on 127.0.0.1 (tests.fixtures.StaticServer): a
connection cut mid-body, 404, the wrong file (size or checksum), a stalled server. Each ends in a clear
error naming the URL, leaves nothing in the download folder (no partial file, no temp file), and a
second run succeeds once the server serves the right file."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamodules.download import ChecksumError, DownloadError, fetch
from tests.fixtures import StaticServer

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = StaticServer(tmp_path_factory.mktemp("srv"))
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _isolated_home(zoo_home_env: Path) -> Path:
    return zoo_home_env


def assert_empty(folder: Path) -> None:
    assert sorted(os.listdir(folder)) == [], "a failed download left files behind"


def then_it_works(server: StaticServer, name: str, folder: Path, sha256: str | None = None) -> None:
    """The second run, once the server serves the right file: downloaded and verified."""
    server.misbehave(name, None)
    server.add(name, PAYLOAD)
    path = fetch(server.url(name), sha256 or sha(PAYLOAD), folder=folder, progress=False, timeout=5)
    assert path == folder / name and path.read_bytes() == PAYLOAD
    assert sorted(os.listdir(folder)) == [name]


@pytest.mark.parametrize("pinned", [True, False], ids=["sha256", "no-hash"])
def test_connection_cut_mid_body(server: StaticServer, tmp_path: Path, pinned: bool) -> None:
    name = f"cut-{pinned}.bin"
    server.add(name, PAYLOAD)
    server.misbehave(name, "cut")
    # Without a hash too: the body is shorter than its Content-Length, so it is not taken for the file.
    with pytest.raises(DownloadError, match=rf"could not download {server.url(name)}: .*(Connection|Incomplete|ChunkedEncoding)"):
        fetch(server.url(name), sha(PAYLOAD) if pinned else None, folder=tmp_path, progress=False, timeout=5)
    assert_empty(tmp_path)
    then_it_works(server, name, tmp_path)


def test_404_then_the_file_appears(server: StaticServer, tmp_path: Path) -> None:
    url = server.url("later.bin")
    with pytest.raises(DownloadError, match=rf"could not download {url}: HTTPError: 404") as info:
        fetch(url, sha(PAYLOAD), folder=tmp_path, progress=False, timeout=5)
    assert f"place it at {tmp_path.resolve() / 'later.bin'} with sha256 {sha(PAYLOAD)}" in str(info.value)
    assert_empty(tmp_path)
    then_it_works(server, "later.bin", tmp_path)


@pytest.mark.parametrize(
    "wrong", [PAYLOAD[:-1], PAYLOAD + b"\0", PAYLOAD[:100] + b"X" + PAYLOAD[101:], b""], ids=["short", "long", "bitflip", "empty"]
)
def test_wrong_size_or_content_is_a_checksum_error(server: StaticServer, tmp_path: Path, wrong: bytes) -> None:
    name = f"wrong-{len(wrong)}-{sha(wrong)[:8]}.bin"
    url = server.add(name, wrong)
    with pytest.raises(ChecksumError, match=rf"checksum mismatch for {url}: expected sha256 {sha(PAYLOAD)}, got {sha(wrong)}"):
        fetch(url, sha(PAYLOAD), folder=tmp_path, progress=False, timeout=5)
    assert_empty(tmp_path)
    then_it_works(server, name, tmp_path)


def test_stalled_server_times_out(server: StaticServer, tmp_path: Path) -> None:
    server.add("stall.bin", PAYLOAD)
    server.misbehave("stall.bin", "stall")
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"could not download .*stall\.bin: .*[Tt]imed? ?out"):
        fetch(server.url("stall.bin"), sha(PAYLOAD), folder=tmp_path, progress=False, timeout=0.5)
    assert time.monotonic() - start < 5  # the timeout, not pooch's default 30 s
    assert_empty(tmp_path)
    then_it_works(server, "stall.bin", tmp_path)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(min_size=2, max_size=4096), pinned=st.booleans())
def test_any_cut_body_leaves_nothing(server: StaticServer, tmp_path_factory, body: bytes, pinned: bool) -> None:
    folder = tmp_path_factory.mktemp("dl")
    name = f"any-{sha(body)[:16]}.bin"
    server.add(name, body)
    server.misbehave(name, "cut")
    with pytest.raises(DownloadError, match=name):
        fetch(server.url(name), sha(body) if pinned else None, folder=folder, progress=False, timeout=5)
    assert_empty(folder)
    server.misbehave(name, None)
    assert fetch(server.url(name), sha(body), folder=folder, progress=False, timeout=5).read_bytes() == body
