"""Hostile archives through datamodules.download.extract: member names made of ``..``, ``/``, drive
letters and backslashes; symlinks and hard links to anywhere; device files and FIFOs; zip and tar bombs;
truncated and bit-flipped archives. Every case either extracts inside the target or fails with
UnsafeArchiveError / DataFormatError naming the archive, and nothing is ever written outside the
target, nor left half-extracted (no target folder, no temp folder) after a failure."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamodules.download import EXTRACTED_MARKER, DataFormatError, UnsafeArchiveError, extract
from tests.fixtures import write_tar

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SEGMENTS = st.sampled_from(["..", ".", "", "a", "b", "sub", "C:", "\\", "..\\x", "/", "~", "etc", "a b", "é"])
NAMES = st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join)


def sandbox(tmp_path_factory) -> Path:
    """``box/work`` holds the archive and the target; ``box/outside`` must stay empty."""
    box = tmp_path_factory.mktemp("box")
    (box / "work").mkdir()
    (box / "outside").mkdir()
    return box


def everything_under(folder: Path) -> list:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def check_outcome(box: Path, archive: Path) -> None:
    """Extract into ``box/work/dest``: inside it and complete, or a clear error and nothing left."""
    dest = box / "work" / "dest"
    try:
        extract(archive, dest)
    except (UnsafeArchiveError, DataFormatError) as err:
        assert str(archive) in str(err) and "\n" not in str(err)  # one line, as the CLI prints it
        assert sorted(os.listdir(box / "work")) == [archive.name], "a failed extraction left files behind"
    else:
        assert (dest / EXTRACTED_MARKER).is_file()
        for path in dest.rglob("*"):
            # Links may exist, but each one resolves inside the target.
            # (realpath, not resolve: a link loop inside the target is harmless, and resolve raises on it)
            assert Path(os.path.realpath(path)).is_relative_to(dest.resolve()), f"{path} leads outside the target"
        assert sorted(os.listdir(box / "work")) == sorted([archive.name, "dest"])
    assert everything_under(box / "outside") == []
    assert sorted(os.listdir(box)) == ["outside", "work"]


def tar_of(path: Path, members: list) -> Path:
    """``members``: (name, kind, data-or-link target); kind one of file, dir, sym, hard, chr, blk, fifo."""
    kinds = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "sym": tarfile.SYMTYPE,
        "hard": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "blk": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    with tarfile.open(path, "w") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = kinds[kind]
            data = None
            if kind == "file":
                data = payload
                info.size = len(data)
            elif kind in ("sym", "hard"):
                info.linkname = payload
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@FUZZ
@given(names=st.lists(NAMES, min_size=1, max_size=4))
def test_tar_member_names(tmp_path_factory, names: list) -> None:
    box = sandbox(tmp_path_factory)
    archive = tar_of(box / "work" / "a.tar", [(n, "file", b"x") for n in names])
    check_outcome(box, archive)


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile warns when writing the same name twice
@FUZZ
@given(names=st.lists(NAMES, min_size=1, max_size=4))
def test_zip_member_names(tmp_path_factory, names: list) -> None:
    box = sandbox(tmp_path_factory)
    archive = box / "work" / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in names:
            zf.writestr(zipfile.ZipInfo(name), b"x")  # a ZipInfo: writestr(str) cannot write an empty name
    check_outcome(box, archive)


TARGETS = st.one_of(NAMES, st.sampled_from(["/etc", "/", "../outside", "../../outside/x", "dest/../..", "."]))


@FUZZ
@given(
    links=st.lists(
        st.tuples(st.sampled_from(["a", "b", "sub/c", "link"]), st.sampled_from(["sym", "hard"]), TARGETS), min_size=1, max_size=3
    ),
    then=st.sampled_from(["a/x", "link/x", "b", "sub/c/x"]),
)
def test_tar_links(tmp_path_factory, links: list, then: str) -> None:
    # A link, then a file written through it: the classic way to escape the target.
    box = sandbox(tmp_path_factory)
    archive = tar_of(box / "work" / "l.tar", [("sub", "dir", None), *links, (then, "file", b"through")])
    check_outcome(box, archive)


@pytest.mark.parametrize("kind", ["chr", "blk", "fifo"])
def test_tar_device_files_and_fifos_are_refused(tmp_path_factory, kind: str) -> None:
    box = sandbox(tmp_path_factory)
    archive = tar_of(box / "work" / "d.tar", [("ok.txt", "file", b"ok"), ("dev", kind, None)])
    with pytest.raises(UnsafeArchiveError, match=r"unsafe member 'dev'"):
        extract(archive, box / "work" / "dest")
    check_outcome(box, archive)


def test_hard_link_inside_the_target_is_extracted(tmp_path_factory) -> None:
    box = sandbox(tmp_path_factory)
    archive = tar_of(box / "work" / "h.tar", [("data.txt", "file", b"same"), ("copy.txt", "hard", "data.txt")])
    dest = extract(archive, box / "work" / "dest")
    assert (dest / "copy.txt").read_bytes() == b"same"


# ---- bombs: the total size of the members is limited ---------------------------------------------------
def test_zip_bomb_is_refused_before_writing(tmp_path_factory) -> None:
    box = sandbox(tmp_path_factory)
    archive = box / "work" / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(4):
            zf.writestr(f"zeros{i}", bytes(1 << 20))  # 4 MiB of zeros, 16 KiB compressed
    assert archive.stat().st_size < 64 << 10
    with pytest.raises(UnsafeArchiveError, match=r"hold more than 3,000,000 bytes \(at least 4,194,304\).*zip/tar bombs"):
        extract(archive, box / "work" / "dest", max_bytes=3_000_000)
    check_outcome(box, archive)  # the default limit (64 GiB) lets it through
    assert (box / "work" / "dest" / "zeros3").stat().st_size == 1 << 20


def test_tar_bomb_is_refused_part_way(tmp_path_factory) -> None:
    box = sandbox(tmp_path_factory)
    archive = write_tar(box / "work" / "bomb.tar.gz", {f"zeros{i}": bytes(1 << 20) for i in range(4)})
    with pytest.raises(UnsafeArchiveError, match=r"hold more than 2,500,000 bytes \(at least 3,145,728\)"):
        extract(archive, box / "work" / "dest", max_bytes=2_500_000)
    assert sorted(os.listdir(box / "work")) == ["bomb.tar.gz"]  # the members already written are gone


def test_zip_that_lies_about_its_sizes_is_refused(tmp_path_factory) -> None:
    # A member whose headers declare 10 bytes but whose data inflates to 1 MiB: zipfile stops at the
    # declared size and its CRC check fails, so the lie cannot get past the limit.
    box = sandbox(tmp_path_factory)
    archive = box / "work" / "liar.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big", bytes(1 << 20))
    data = bytearray(buffer.getvalue())
    size = (1 << 20).to_bytes(4, "little")
    for offset in [i for i in range(len(data) - 3) if data[i : i + 4] == size]:
        data[offset : offset + 4] = (10).to_bytes(4, "little")  # local header and central directory
    archive.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=r"liar\.zip: not a readable zip archive"):
        extract(archive, box / "work" / "dest", max_bytes=100)
    check_outcome(box, archive)


# ---- broken archives ------------------------------------------------------------------------------------
def valid_archive(kind: str) -> bytes:
    buffer = io.BytesIO()
    files = {"a.txt": b"alpha " * 50, "sub/b.txt": b"beta " * 80}
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


VALID = {kind: valid_archive(kind) for kind in ("zip", "tar.gz")}


@FUZZ
@given(
    kind=st.sampled_from(sorted(VALID)),
    cut=st.floats(0, 1, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), max_size=3),
)
def test_truncated_or_bit_flipped_archives(tmp_path_factory, kind: str, cut: float, flips: list) -> None:
    data = bytearray(VALID[kind])
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    if cut > 0.02:  # most examples truncated, a few only bit-flipped
        data = data[: int(cut * len(data))]
    box = sandbox(tmp_path_factory)
    archive = box / "work" / f"broken.{kind}"
    archive.write_bytes(bytes(data))
    check_outcome(box, archive)


@pytest.mark.parametrize("data", [b"", b"\0" * 1024, os.urandom(2048)], ids=["empty", "nul", "random"])
@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_empty_or_random_bytes(tmp_path_factory, data: bytes, kind: str) -> None:
    box = sandbox(tmp_path_factory)
    archive = box / "work" / f"junk.{kind}"
    archive.write_bytes(data)
    if kind != "zip" and data == b"\0" * 1024:  # two zero blocks: a valid, empty (uncompressed) tar
        assert everything_under(extract(archive, box / "work" / "dest")) == [EXTRACTED_MARKER]
        return
    with pytest.raises(DataFormatError, match=rf"junk\.{kind}: not a readable"):
        extract(archive, box / "work" / "dest")
    check_outcome(box, archive)
