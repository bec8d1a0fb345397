"""The one shared way the zoo fetches, unpacks and caches datasets, and the errors a data file raises.

Every datamodule goes through :func:`fetch` (download + sha256 check + cache)
and :func:`extract` (safe, atomic unpacking), so that caching, checksums,
offline use and archive safety behave the same everywhere.  Downloads are done
by `pooch`; this module only adds the zoo's cache location, clearer errors and
safe extraction.  See ``docs/data.md`` ("Downloads").  Datasets that tokenize
their files store the result once through :func:`cached` (keyed by the files'
identity and every setting that changes it).  :class:`DataFormatError` (a file
that does not look as expected) and :class:`MissingDataError` (files not where
they should be) are the two errors every reader raises, naming the file.
"""

from __future__ import annotations

import errno
import ftplib
import gzip
import hashlib
import json
import lzma
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple
from urllib.parse import unquote, urlparse

import pooch
import requests
import torch

from .errors import DataFormatError, MissingDataError, UserError  # defined once, below every reader

__all__ = [
    "ChecksumError",
    "DataFormatError",
    "DownloadError",
    "MissingDataError",
    "UnsafeArchiveError",
    "cached",
    "data_dir",
    "extract",
    "fetch",
    "file_identity",
    "read_text",
    "unreadable",
    "write_atomic",
    "zoo_home",
]

#: Written into an extracted folder as the very last step; its presence means
#: the extraction finished, so a later call can skip the work.
EXTRACTED_MARKER = ".zoo-extracted"

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

#: The most bytes :func:`extract` unpacks from one archive (the sum of its members' sizes) unless told
#: otherwise: well above the largest dataset archive the zoo reads (COCO train2014, 13 GB), well below
#: what a zip or tar bomb would fill a disk with.
MAX_EXTRACT_BYTES = 64 * 2**30
#: The most members :func:`extract` unpacks from one archive unless told otherwise (COCO train2014
#: holds 82,783 images; a million files of nothing would exhaust inodes, not bytes).
MAX_EXTRACT_MEMBERS = 1_000_000
#: The largest tar header block a member may carry (a PAX extended header, a GNU long name or link):
#: tarfile reads one whole into memory before any filter sees the member. Real ones are a few hundred bytes.
MAX_TAR_HEADER = 1 << 20
#: The longest member path part and whole path (bytes of UTF-8) an archive may hold: the file system's
#: own limits (NAME_MAX, PATH_MAX on Linux), checked before writing so that the refusal is ours.
MAX_NAME_PART, MAX_NAME = 255, 4096
#: Seconds :func:`fetch` waits for a connection, or for the next bytes of a body, before giving up.
DOWNLOAD_TIMEOUT = 30.0


class ChecksumError(UserError, RuntimeError):
    """A downloaded file's sha256 differs from the expected one (file removed)."""


class DownloadError(UserError, RuntimeError):
    """A download failed (network, HTTP status, ...); says how to place the file by hand."""


class UnsafeArchiveError(UserError, ValueError):
    """An archive member would land outside the target folder, or is a link/device."""


def unreadable(path: str | Path, what: str, err: BaseException) -> DataFormatError:
    """``<path>: not a readable <what> (<error>: <message>)`` on one line (tarfile's own messages span
    several): the error for a file that a library cannot parse."""
    return DataFormatError(f"{path}: not a readable {what} ({type(err).__name__}: {' '.join(str(err).split())})")


def read_text(path: str | Path, expected: str) -> str:
    """The UTF-8 text of ``path``, as ``Path.read_text(encoding="utf-8")`` gives it; invalid UTF-8 is a
    :class:`DataFormatError` naming the file, line and byte and saying what the file should hold
    (``expected``, e.g. "UTF-8 JSON")."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: invalid UTF-8 (byte {err.start}: {err.reason}); expected {expected}") from None


def zoo_home() -> Path:
    """Root of everything the zoo caches: ``$ZOO_HOME`` if set, else ``~/.cache/zoo``."""
    env = os.environ.get("ZOO_HOME")
    home = Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"
    home.mkdir(parents=True, exist_ok=True)
    return home


def data_dir() -> Path:
    """Default folder for downloaded datasets: ``zoo_home() / "data"``."""
    path = zoo_home() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _normalize_sha256(sha256: str) -> str:
    # Accept "sha256:<hex>" too, and fail early on typos: a malformed hash would
    # otherwise only show up after a (possibly large) download.
    value = sha256.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:") :]
    if not _SHA256_RE.match(value):
        raise ValueError(f"not a sha256 hex digest (64 hex characters): {sha256!r}")
    return value


def _filename_from_url(url: str) -> str:
    name = unquote(posixpath.basename(urlparse(url).path))
    if not name:
        raise ValueError(f"cannot derive a file name from URL {url!r}; pass filename=")
    return name


def _default_progress() -> bool:
    # A progress bar only helps a human watching a terminal; in logs and CI it is noise.
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed stream
        return False


def fetch(
    url: str,
    sha256: str | None,
    *,
    filename: str | None = None,
    folder: str | Path | None = None,
    progress: bool | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    max_bytes: int | None = None,
) -> Path:
    """Download ``url`` into ``folder`` (default :func:`data_dir`) and return its path.

    ``sha256`` is checked after every download, and a cached file is reused only
    if it matches (otherwise it is downloaded again).  ``sha256=None`` skips the
    check and reuses any file already present: meant only for URLs a user gives
    at run time; URLs built into the zoo must always carry a hash.

    The file is downloaded to a temporary name in ``folder`` and moved into place
    only once verified, so an interrupted or corrupt download never looks cached.
    ``timeout``: seconds to wait for the connection or for the next bytes of the body (a stalled
    server is then a :class:`DownloadError`). A body shorter than the server's ``Content-Length`` is a
    :class:`DownloadError` too, with or without a hash.

    ``max_bytes``: the size the caller expects at most (a manifest's declared size): a
    ``Content-Length`` above it is refused before the body is read, and reading stops as soon as the
    body passes it (:class:`DownloadError`, nothing left behind).

    Raises :class:`ChecksumError` on a hash mismatch (nothing is left behind) and
    :class:`DownloadError` on network/HTTP failures.
    """
    expected = _normalize_sha256(sha256) if sha256 is not None else None
    name = filename if filename is not None else _filename_from_url(url)
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        # `folder` says where; the file name must not escape it.
        raise ValueError(f"filename must be a plain file name, got {name!r}")
    target_dir = Path(folder).expanduser() if folder is not None else data_dir()
    target = target_dir.resolve() / name
    if progress is None:
        progress = _default_progress()
    # pooch's own HTTP downloader waits 30 s; ours passes the caller's timeout to requests.
    http = urlparse(url).scheme in ("http", "https")
    if http and max_bytes is not None:
        downloader = _LimitedDownloader(max_bytes, timeout=timeout)
    else:
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout) if http else None

    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{expected}" if expected else None,
            fname=name,
            path=target_dir,
            progressbar=progress,
            downloader=downloader,
        )
    except ValueError as err:
        # pooch signals a hash mismatch with a plain ValueError; anything else is not ours.
        if "does not match the known hash" not in str(err):
            raise
        # pooch already deleted its temp file; a stale cached copy it tried to
        # replace may still be there, and it is wrong by definition: remove it
        # so that nothing unverified is left to be mistaken for data.
        target.unlink(missing_ok=True)
        found = re.search(r"but got ([0-9a-fA-F]+)", str(err))
        actual = found.group(1).lower() if found else "unknown"
        raise ChecksumError(
            f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}. "
            f"The downloaded file was removed (nothing left at {target}). The file "
            "may be corrupted in transit, or the server now serves different content."
        ) from err
    except (requests.exceptions.RequestException, OSError, *ftplib.all_errors) as err:
        hint = f" with sha256 {expected}" if expected else ""
        raise DownloadError(
            f"could not download {url}: {type(err).__name__}: {err}. "
            f"To work offline, fetch the file on another machine and place it at "
            f"{target}{hint}; it is then used without network access."
        ) from err
    return Path(path)


class _LimitedDownloader(pooch.HTTPDownloader):
    """pooch's HTTP downloader that reads at most ``max_bytes``: a larger ``Content-Length`` is refused
    before the body, and a body that runs past the limit is cut off (:class:`requests.RequestException`
    subclasses, so :func:`fetch` reports them as a :class:`DownloadError`)."""

    def __init__(self, max_bytes: int, timeout: float) -> None:
        super().__init__(progressbar=False, timeout=timeout)
        self.max_bytes = max_bytes

    def __call__(self, url: str, output_file: str, pooch_obj: object, check_only: bool = False) -> None:
        if check_only:
            return super().__call__(url, output_file, pooch_obj, check_only=True)
        with requests.get(url, timeout=self.kwargs.get("timeout", DOWNLOAD_TIMEOUT), stream=True) as response:
            response.raise_for_status()
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise requests.exceptions.ContentDecodingError(
                    f"the server declares {int(declared):,} bytes (Content-Length), more than the {self.max_bytes:,} expected; nothing was read"
                )
            written = 0
            with open(output_file, "wb") as out:
                for chunk in response.iter_content(chunk_size=self.chunk_size):
                    written += len(chunk)
                    if written > self.max_bytes:
                        raise requests.exceptions.ContentDecodingError(
                            f"the body runs past the {self.max_bytes:,} bytes expected; reading stopped there"
                        )
                    out.write(chunk)


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    # Files named after a URL may lack an extension: fall back to the content.
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise ValueError(f"unsupported archive type (want .tar, .tar.gz, .tgz or .zip): {archive}")


def _too_big(archive: Path, total: int, max_bytes: int) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to extract {archive}: its members hold more than {max_bytes:,} bytes (at least {total:,}), "
        "the limit against zip/tar bombs; pass max_bytes= to extract a larger archive you trust"
    )


def _clash(archive: Path, member: str, into: Path, err: BaseException) -> DataFormatError:
    # Raised while writing members: they clash (a file and a folder of one name, a member named like
    # the target itself) or a link names a member that is not there. Said in archive terms: the temp
    # folder in the OS message is gone by the time anyone reads it.
    detail = (err.args[0] if isinstance(err, KeyError) and err.args else str(err)).replace(str(into), "<target>")
    return DataFormatError(
        f"{archive}: cannot extract member {member!r} ({type(err).__name__}: {detail}); expected members "
        "with distinct paths (not a file and a folder of one name) and links to members the archive holds"
    )


#: Errors of extracting that come from the archive's own members, not from the disk.
_CLASH_ERRORS = (IsADirectoryError, NotADirectoryError, FileExistsError, FileNotFoundError, KeyError)


def _is_clash(err: BaseException) -> bool:
    return isinstance(err, _CLASH_ERRORS) or (isinstance(err, OSError) and err.errno == errno.ELOOP)


def _strict_data_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
    # The "data" filter silently strips a leading "/" and extracts inside the
    # target anyway; an archive with absolute names is suspect, so refuse it.
    if member.name.startswith(("/", "\\")) or os.path.isabs(member.name):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest_path)


def _long_name(name: str) -> Optional[str]:
    """Why a member name is too long for the file system (``None`` when it is not)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_NAME:
        return f"a name of {len(raw):,} bytes, more than {MAX_NAME}"
    if any(len(part) > MAX_NAME_PART for part in re.split(rb"[/\\]", raw)):
        return f"a path part longer than {MAX_NAME_PART} bytes"
    return None


def _too_many(archive: Path, max_members: int) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to extract {archive}: it holds more than {max_members:,} members, the limit; "
        "pass max_members= to extract a larger archive you trust"
    )


#: tar members that are headers of the next member, read whole by tarfile before the member exists
_TAR_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


def _counting_tarinfo(archive: Path, budget: Dict[str, int], max_bytes: int) -> type:
    """A ``TarInfo`` class that counts every header block (PAX, GNU long name) against ``budget`` and
    :data:`MAX_TAR_HEADER` *before* tarfile reads it into memory."""

    class Counted(tarfile.TarInfo):
        def _proc_member(self, tar: tarfile.TarFile):  # tarfile's hook between the 512-byte block and the rest
            if self.type in _TAR_HEADERS:
                budget["total"] += self.size
                if budget["total"] > max_bytes:
                    raise _too_big(archive, budget["total"], max_bytes)
                if self.size > MAX_TAR_HEADER:
                    raise UnsafeArchiveError(
                        f"refusing to extract {archive}: a header block (PAX or GNU long name) of "
                        f"{self.size:,} bytes, more than {MAX_TAR_HEADER:,}; real ones are a few hundred"
                    )
            return super()._proc_member(tar)

    return Counted


def _extract_tar(archive: Path, into: Path, max_bytes: int, max_members: int = MAX_EXTRACT_MEMBERS) -> None:
    if not hasattr(tarfile, "data_filter"):
        # Without the filter, tarfile follows absolute paths and `..`: refuse rather than risk it.
        raise RuntimeError("safe tar extraction needs a Python with tarfile filters (3.10.12+, 3.11.4+, 3.12+)")
    budget, current = {"total": 0, "members": 0}, "?"

    def checked(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
        # Counted as members arrive (one pass over a compressed stream): a member writes exactly
        # member.size bytes, so the running sum (with the header blocks read before it) is what was read.
        nonlocal current
        budget["total"] += member.size
        budget["members"] += 1
        current = member.name
        if budget["total"] > max_bytes:
            raise _too_big(archive, budget["total"], max_bytes)
        if budget["members"] > max_members:
            raise _too_many(archive, max_members)
        too_long = _long_name(member.name) or (_long_name(member.linkname) if member.linkname else None)
        if too_long:
            raise UnsafeArchiveError(f"refusing to extract {archive}: member {member.name[:80]!r}... has {too_long}")
        return _strict_data_filter(member, dest_path)

    # errorlevel=1 makes filter refusals raise instead of being logged and skipped.
    try:
        with tarfile.open(archive, "r:*", errorlevel=1, tarinfo=_counting_tarinfo(archive, budget, max_bytes)) as tar:
            # The "data" filter refuses `..`, links leaving the target and
            # device files, and drops setuid bits; ours adds absolute paths and the size limit.
            tar.extractall(into, filter=checked)
    except tarfile.FilterError as err:
        member = err.tarinfo.name if err.tarinfo is not None else "?"
        raise UnsafeArchiveError(f"refusing to extract {archive}: unsafe member {member!r} ({err})") from err
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as err:
        # A corrupt or truncated archive; a full disk (another OSError) keeps its own message.
        raise unreadable(archive, "tar archive", err) from None
    except (OSError, KeyError) as err:
        if not _is_clash(err):
            raise
        raise _clash(archive, current, into, err) from None


def _extract_zip(archive: Path, into: Path, max_bytes: int, max_members: int = MAX_EXTRACT_MEMBERS) -> None:
    root = into.resolve()
    current = "?"
    try:
        with zipfile.ZipFile(archive) as zf:
            if len(zf.infolist()) > max_members:
                raise _too_many(archive, max_members)
            _check_zip_members(archive, zf.infolist(), root, max_bytes)
            for info in zf.infolist():
                current = info.filename
                zf.extract(info, into)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as err:
        raise unreadable(archive, "zip archive", err) from None
    except OSError as err:
        if err.errno == errno.EINVAL:  # a corrupt offset in the archive makes zipfile seek before the start
            raise unreadable(archive, "zip archive", err) from None
        if not _is_clash(err):
            raise
        raise _clash(archive, current, into, err) from None


def _check_zip_members(archive: Path, infos: Sequence[zipfile.ZipInfo], root: Path, max_bytes: int) -> None:
    # zipfile never writes more than a member's declared file_size, so their sum bounds the output
    # before a byte is written.
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise _too_big(archive, total, max_bytes)
    # Check every member before writing anything: zipfile silently rewrites
    # `..` and absolute names, which would hide a malicious archive.
    for info in infos:
        name = info.filename
        parts = re.split(r"[/\\]", name)
        mode = info.external_attr >> 16
        too_long = _long_name(name)
        if too_long:
            raise UnsafeArchiveError(f"refusing to extract {archive}: member {name[:80]!r}... has {too_long}")
        if stat.S_ISLNK(mode):
            reason = "symlink entry"
        elif name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            reason = "absolute path"
        elif ".." in parts:
            reason = "'..' component"
        elif not name.endswith("/") and all(part in ("", ".") for part in parts):
            reason = "a file named like the target folder itself"
        elif not (root / name).resolve().is_relative_to(root):
            reason = "resolves outside the target"
        else:
            continue
        raise UnsafeArchiveError(f"refusing to extract {archive}: unsafe member {name!r} ({reason})")


def extract(
    archive: str | Path, dest: str | Path, max_bytes: int = MAX_EXTRACT_BYTES, max_members: int = MAX_EXTRACT_MEMBERS
) -> Path:
    """Unpack a tar (.tar, .tar.gz, .tgz) or zip ``archive`` into ``dest``; return ``dest``.

    Members that would escape ``dest`` (absolute paths, ``..``, links pointing
    outside, device files, zip symlinks) raise :class:`UnsafeArchiveError`, and so
    do members whose sizes add up to more than ``max_bytes`` (a zip or tar bomb;
    default :data:`MAX_EXTRACT_BYTES`, 64 GiB; tar header blocks, PAX and GNU long names, are
    counted too, before they are read, and each is at most :data:`MAX_TAR_HEADER`), and archives of
    more than ``max_members`` members (default :data:`MAX_EXTRACT_MEMBERS`) or with names longer
    than the file system takes. A file that is not a readable
    archive (corrupt, truncated) is a :class:`DataFormatError` naming it.
    Extraction happens in a temporary folder beside ``dest`` that is renamed into
    place when complete, so a failure leaves no half-filled ``dest``.  If ``dest``
    already holds a finished extraction (marker file ``.zoo-extracted``), it is
    returned as is; delete ``dest`` to force a fresh extraction.
    """
    archive = Path(archive).expanduser()
    dest = Path(dest).expanduser()
    if (dest / EXTRACTED_MARKER).is_file():
        return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        # Not ours (no marker), and not empty: never overwrite someone's files.
        raise FileExistsError(f"{dest} exists but is not a finished extraction (no {EXTRACTED_MARKER}); remove it and try again")
    if not archive.is_file():
        # Checked first: past this point a missing file can only be a link inside the archive.
        raise FileNotFoundError(f"archive {archive} does not exist")
    kind = _archive_kind(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Beside dest (same file system) so that the final rename is atomic.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        # mkdtemp makes it private (0o700); the published folder should look like any other.
        tmp.chmod(0o755)
        if kind == "tar":
            _extract_tar(archive, tmp, max_bytes, max_members)
        else:
            _extract_zip(archive, tmp, max_bytes, max_members)
        # Written last: its presence certifies everything before it is complete.
        (tmp / EXTRACTED_MARKER).write_text(f"{archive.name}\n")
        try:
            # Replaces an empty dest atomically; fails if dest is non-empty.
            os.replace(tmp, dest)
        except OSError:
            # Another process may have finished the same extraction first.
            if (dest / EXTRACTED_MARKER).is_file():
                return dest
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename: a reader never
    sees a half-written file, and a failure leaves the old file (or none) in place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a published file is readable like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- the on-disk cache of tokenized data ---------------------------------------------------------
#: Bump when the cached format or the way texts are read/encoded changes: old cache entries are ignored.
#: 2: text classification splits also keep each example's source (and the test split its text).
CACHE_VERSION = 2


def file_identity(path: Path) -> Tuple[str, int, int]:
    """``(absolute path, size, mtime_ns)``: changes whenever the file is replaced or edited."""
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


def cache_key(files: Sequence[Path], settings: Dict) -> str:
    payload = {"version": CACHE_VERSION, "files": [file_identity(f) for f in files], "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached(name: str, files: Sequence[Path], settings: Dict, build: Callable[[], Dict], cache_dir: Optional[Path] = None) -> Dict:
    """``build()`` once per (input files, settings); later calls load ``<cache_dir>/<name>-<key>.pt``
    (default ``cache_dir``: ``zoo_home()/"cache"/"text"``).

    The result must hold only tensors, strings, numbers, lists and dicts: it is loaded with
    ``torch.load(weights_only=True)``, which never unpickles code. It is written to a temp file in the
    same folder and renamed into place, so an interrupted run never leaves a half-written entry; an
    unreadable entry is rebuilt."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else zoo_home() / "cache" / "text"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{cache_key(files, settings)}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception as err:  # truncated by a full disk, an older torch, ...: rebuild it
            warnings.warn(f"ignoring unreadable cache entry {path} ({type(err).__name__}: {err}); rebuilding it")
    data = build()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return data
