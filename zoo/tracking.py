"""Weights & Biases without surprises: offline when there are no credentials, never a prompt."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Iterable


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
