"""Where a pretrained folder comes from: :func:`locate` turns a name, path, URL or Hub id into a
local, verified folder that :func:`zoo.hub.format.read_folder` reads.

In this order:

1. a registered name: the weights shipped inside the package (``zoo/pretrained/<name>/``), or the
   card's URL or Hub repo; the weights are checked against the card's sha256;
2. a local folder, or a local ``.zip``/``.tar.gz``/``.tar`` of one (extracted safely under
   ``$ZOO_HOME/pretrained/extracted/``);
3. an ``http(s)://`` URL of a folder (``<url>/config.json``, then every file its manifest lists) or of
   an archive, optionally pinned with ``#sha256=<hex>``;
4. a Hugging Face Hub repo id (``owner/name``, ``hf://owner/name@revision``).

Remote files land under ``$ZOO_HOME/pretrained`` (URLs) or ``$ZOO_HOME/hub`` (Hub) and are
sha256-verified: every file named in the manifest against its digest, the archive or
``config.json`` against a pin when one is given. An unpinned ``config.json``/archive is downloaded
again on every load (a copy already cached is used only when the download fails), so a changed
model is never hidden by a stale cache.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional, Tuple, Union
from urllib.parse import unquote, urlparse

import torch

from datamodules.download import ChecksumError, DownloadError, extract, fetch, zoo_home
from zoo.hub.errors import ChecksumMismatchError, MissingFileError, NoWeightsError, PretrainedError, RemoteError
from zoo.hub.format import CONFIG_NAME, WEIGHTS_NAME, read_config, refuse_pickle, sha256_of, sniff, write_folder
from zoo.hub.registry import ModelEntry, list_models, model_entry, unknown_model

__all__ = ["locate", "entry_folder", "push_to_hub", "HUB_ID"]

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
#: A pretrained archive holds one folder: config.json, the weights and a few tokenizer files. The most
#: bytes and members one may unpack to (a data set's archive has its own, larger limits).
MAX_ARCHIVE_BYTES = 8 * 2**30
MAX_ARCHIVE_MEMBERS = 64
#: The largest config.json downloaded from a URL (a tokenizer's JSON inside it is a few MB)
MAX_CONFIG_BYTES = 256 * 2**20
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
# A Hub repo id: "owner/name" (letters, digits, "-", "_", "."), optionally "@revision".
HUB_ID = re.compile(r"^(?:hf://)?(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[\w./-]+))?$")


def locate(
    name_or_path: Union[str, Path],
    *,
    sha256: Optional[str] = None,
    revision: Optional[str] = None,
    endpoint: Optional[str] = None,
    token: Optional[str] = None,
) -> Path:
    """The local folder of a registered name, local folder or archive, http(s) URL (folder or
    archive; pin with ``sha256=`` or ``#sha256=``) or Hugging Face Hub repo id (``owner/name``,
    ``hf://owner/name@revision``; ``endpoint``/``token`` for the Hub client), downloaded and verified
    as needed. A registered name wins over a relative path: write ``./name`` for the folder."""
    source = str(name_or_path)
    if isinstance(name_or_path, str) and source in list_models():
        return entry_folder(model_entry(source), endpoint, token)
    if isinstance(name_or_path, Path) or Path(source).expanduser().exists():
        return _local(Path(source).expanduser(), sha256)
    if source.startswith(("https://", "http://")):
        return _url_folder(source, sha256)
    found = HUB_ID.match(source)
    if found and (source.startswith("hf://") or not source.startswith((".", "~"))):
        return _hub_folder(found["repo"], revision or found["rev"], endpoint, token)
    if source.startswith(("/", ".", "~")) or "/" in source or "\\" in source:
        raise MissingFileError(f"{source}: no such file or folder")
    raise unknown_model(source, " A local folder, an http(s) URL or a Hub repo id 'owner/name' also work.")


# ---- a registered name --------------------------------------------------------------------------
def entry_folder(entry: ModelEntry, endpoint: Optional[str] = None, token: Optional[str] = None) -> Path:
    """The verified local folder of a registry entry's weights (shipped, pinned URL or Hub repo)."""
    card, where = entry.card, entry.weights
    if where == "package":
        folder = entry.package_dir
    elif where == "url":
        folder = _url_folder(card.url, None)
    elif where == "hub":
        found = HUB_ID.match(card.hub_repo)
        if not found:
            raise PretrainedError(f"model {entry.name!r}: its card's hub_repo {card.hub_repo!r} is not 'owner/name[@revision]'")
        folder = _hub_folder(found["repo"], found["rev"], endpoint, token)
    else:
        command = f" Train it with: {card.command}" if card and card.command else ""
        shipped = ", ".join(list_models(pretrained=True)) or "none"
        raise NoWeightsError(
            f"no pretrained weights for {entry.name!r} yet: only its configuration is registered. "
            f"create_model({entry.name!r}) builds it untrained.{command}. Models with weights: {shipped}."
        )
    if card and card.sha256 and (folder / WEIGHTS_NAME).is_file():
        actual = sha256_of(folder / WEIGHTS_NAME)
        if actual != card.sha256.lower():
            raise ChecksumMismatchError(f"{folder / WEIGHTS_NAME}: sha256 {actual} differs from {card.sha256} on the model card")
    return folder


# ---- local paths --------------------------------------------------------------------------------
def _is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _find_folder(root: Path, where: str) -> Path:
    """The folder holding config.json: ``root`` itself or its only subfolder."""
    if (root / CONFIG_NAME).is_file():
        return root
    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and (subs[0] / CONFIG_NAME).is_file():
        return subs[0]
    raise MissingFileError(f"{where}: no {CONFIG_NAME} at the top of the archive or in its only folder")


def _archive_folder(archive: Path, where: str) -> Path:
    """The folder inside a pretrained archive, extracted under the pretrained limits
    (:data:`MAX_ARCHIVE_BYTES`, :data:`MAX_ARCHIVE_MEMBERS`, not a data set's); an archive that
    holds no pretrained folder is removed again."""
    digest = sha256_of(archive)
    dest = extract(
        archive,
        zoo_home() / "pretrained" / "extracted" / digest[:32],
        max_bytes=MAX_ARCHIVE_BYTES,
        max_members=MAX_ARCHIVE_MEMBERS,
    )
    try:
        return _find_folder(dest, where)
    except PretrainedError:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _local(path: Path, sha256: Optional[str]) -> Path:
    if not path.exists():
        raise MissingFileError(f"{path}: no such file or folder")
    if path.is_dir():
        return path
    name = path.name.lower()
    if sha256 is not None and sha256_of(path) != sha256.lower():
        raise ChecksumMismatchError(f"{path}: sha256 {sha256_of(path)} differs from the expected {sha256}")
    if _is_archive(name):
        return _archive_folder(path, str(path))
    valid, kind = sniff(path)
    if kind or (not valid and name.endswith(PICKLE_SUFFIXES)):
        raise refuse_pickle(path, kind or "a pickle file by its name")
    if valid or name == CONFIG_NAME:
        raise PretrainedError(
            f"{path}: pass the folder that holds it (with {CONFIG_NAME}, {WEIGHTS_NAME} and the tokenizer files), not the file"
        )
    raise PretrainedError(f"{path}: not a pretrained folder nor a .zip/.tar.gz of one")


# ---- http(s) URLs -------------------------------------------------------------------------------
def _split_pin(url: str) -> Tuple[str, Optional[str]]:
    base, _, fragment = url.partition("#")
    if fragment.startswith("sha256="):
        return base, fragment[len("sha256=") :]
    return base, None


def _fetch(url: str, sha256: Optional[str], folder: Path, filename: str, max_bytes: Optional[int] = None) -> Path:
    try:
        return fetch(url, sha256, filename=filename, folder=folder, progress=False, max_bytes=max_bytes)
    except ChecksumError as e:
        raise ChecksumMismatchError(str(e)) from None
    except DownloadError as e:
        raise RemoteError(str(e)) from None


def _fetch_fresh(url: str, sha256: Optional[str], folder: Path, filename: str, max_bytes: int) -> Path:
    """A pinned file is cached; an unpinned one is downloaded again (the cached copy is used only when
    the download fails, with a warning). At most ``max_bytes`` are read."""
    if sha256 is not None:
        return _fetch(url, sha256, folder, filename, max_bytes)
    target = folder / filename
    partial = folder / f"{filename}.new"
    partial.unlink(missing_ok=True)
    try:
        os.replace(_fetch(url, None, folder, partial.name, max_bytes), target)
    except RemoteError as e:
        if not target.is_file():
            raise
        warnings.warn(f"{e}; using the copy cached earlier at {target}", stacklevel=4)
    return target


def _url_folder(url: str, sha256: Optional[str]) -> Path:
    url, pinned = _split_pin(url)
    url, sha256 = url.rstrip("/"), sha256 or pinned
    cache = zoo_home() / "pretrained" / "url" / hashlib.sha256(url.encode()).hexdigest()[:32]
    cache.mkdir(parents=True, exist_ok=True)
    name = unquote(posixpath.basename(urlparse(url).path))
    if _is_archive(name):
        return _archive_folder(_fetch_fresh(url, sha256, cache, name, MAX_ARCHIVE_BYTES), url)
    config = read_config(_fetch_fresh(f"{url}/{CONFIG_NAME}", sha256, cache, CONFIG_NAME, MAX_CONFIG_BYTES))
    if not config.get("files"):
        raise PretrainedError(
            f"{url}/{CONFIG_NAME} has no 'files' manifest with sha256 digests: remote weights cannot be verified"
        )
    for member, info in config["files"].items():
        size = info.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_ARCHIVE_BYTES:
            raise PretrainedError(
                f"{url}/{CONFIG_NAME}: manifest entry {member!r} must declare its 'size' in bytes "
                f"(at most {MAX_ARCHIVE_BYTES:,}), got {size!r}"
            )
        _fetch(f"{url}/{member}", str(info["sha256"]), cache, member, size)  # no more than the manifest declares
    return cache


# ---- the Hugging Face Hub -----------------------------------------------------------------------
def _hub_folder(
    repo_id: str, revision: Optional[str] = None, endpoint: Optional[str] = None, token: Optional[str] = None
) -> Path:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as e:  # pragma: no cover - huggingface_hub comes with the dependencies
        raise RemoteError(f"loading {repo_id!r} from the Hugging Face Hub needs huggingface_hub ({e})") from None
    cache_dir = str(zoo_home() / "hub")

    def download(filename: str, rev: Optional[str]) -> Path:
        try:
            return Path(hf_hub_download(repo_id, filename, revision=rev, cache_dir=cache_dir, endpoint=endpoint, token=token))
        except RepositoryNotFoundError:
            raise unknown_model(
                repo_id, f" (Not a local path either, and the Hugging Face Hub has no repo {repo_id!r} visible with this token.)"
            ) from None
        except RevisionNotFoundError:
            raise RemoteError(f"Hub repo {repo_id!r} has no revision {rev!r}") from None
        except EntryNotFoundError:
            raise MissingFileError(f"Hub repo {repo_id!r} (revision {rev or 'main'}): missing {filename}") from None
        except LocalEntryNotFoundError as e:
            raise RemoteError(f"cannot reach the Hugging Face Hub for {repo_id!r}/{filename}, and no cached copy ({e})") from None
        except (HfHubHTTPError, OSError) as e:
            raise RemoteError(f"downloading {filename} of Hub repo {repo_id!r} failed: {e}") from None

    config_path = download(CONFIG_NAME, revision)
    config = read_config(config_path)
    commit = config_path.parent.name  # snapshots/<commit>/config.json: fetch the rest from the same commit
    for member in config.get("files") or {WEIGHTS_NAME: {}}:
        download(member, commit)
    return config_path.parent


def push_to_hub(
    model: Any,
    repo_id: str,
    *,
    dtype: Optional[torch.dtype] = None,
    private: Optional[bool] = None,
    token: Optional[str] = None,
    endpoint: Optional[str] = None,
    commit_message: str = "Upload zoo model",
    revision: Optional[str] = None,
) -> Any:
    """Write ``model`` as a pretrained folder and upload it to the Hub repo ``repo_id`` (created if
    needed) with ``HfApi.upload_folder``; return the commit info. ``locate(repo_id)`` finds it again."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        write_folder(model, tmp, dtype=dtype)
        return api.upload_folder(
            repo_id=repo_id, folder_path=tmp, repo_type="model", commit_message=commit_message, revision=revision
        )
