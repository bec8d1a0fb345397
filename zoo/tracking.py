"""Weights & Biases without surprises: offline when there are no credentials, never a prompt; an
offline run's logged rows read back without the service (:func:`offline_history`: the tests, and the
wall-clock curves of docs/benchmarks.md)."""

from __future__ import annotations

import json
import netrc
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Dict, Iterable, List


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def configure_wandb() -> str:
    """Choose W&B's mode before any logger starts: the user's ``WANDB_MODE`` wins; with no credentials
    runs are written offline (``wandb sync`` uploads them later). Returns the mode."""
    os.environ.setdefault("WANDB_CONSOLE", "off")  # keep our own stdout free of wandb's wrappers
    if "WANDB_MODE" not in os.environ and not wandb_has_credentials():
        os.environ["WANDB_MODE"] = "offline"
    return os.environ.get("WANDB_MODE", "online")


def report_wandb_runs(loggers: Iterable) -> None:
    """Say where each W&B run went and how to upload an offline one."""
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        run = logger.experiment
        run_dir = Path(run.dir).parent  # .../wandb/offline-run-<date>-<id>
        if os.environ.get("WANDB_MODE") in ("offline", "dryrun"):
            print(f"W&B: logged offline to {run_dir}\n     upload it with: wandb sync {run_dir}", flush=True)
        else:
            print(f"W&B: {getattr(run, 'url', None) or run_dir}", flush=True)


BLOCK, FULL, FIRST, LAST = 32768, 1, 2, 4  # the .wandb file's blocks and chunk kinds (LevelDB's log format)


def records(data: bytes) -> List[Any]:
    """W&B's protobuf records in a ``.wandb`` file's bytes: a LevelDB-style log (after a 7-byte header:
    b":W&B", magic, version) of 32 KiB blocks of chunks, each with its CRC-32. Stops before a chunk that is
    cut short or fails its CRC: the service may still be writing the file's tail."""
    from wandb.proto import wandb_internal_pb2

    pos, record, found = 7, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a chunk header is padding
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) != crc:
            break
        pos += 7 + length
        record = chunk if kind in (FULL, FIRST) else record + chunk
        if kind in (FULL, LAST):
            parsed = wandb_internal_pb2.Record()
            parsed.ParseFromString(record)
            found.append(parsed)
    return found


def offline_history(run_dir: Path, timeout: float = 60.0, wait_for_exit: bool = True) -> List[Dict[str, Any]]:
    """The rows ``wandb.log`` wrote, read back from the run's ``.wandb`` file (offline runs write no
    wandb-summary.json). ``finish()`` can return before W&B's service has flushed the file's last
    records (CI once read a half-written one), so read until the run's ``exit`` record is there
    (``wait_for_exit=False``: what a run still going has written so far)."""
    (path,) = Path(run_dir).glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        found = records(path.read_bytes())
        if not wait_for_exit or (found and found[-1].WhichOneof("record_type") == "exit"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} has no exit record after {timeout:.0f} s ({len(found)} records)")
        time.sleep(0.5)
    return [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
        for r in found
        if r.WhichOneof("record_type") == "history"
    ]
