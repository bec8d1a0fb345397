"""What every task module shares: a checkpoint that knows which class rebuilds it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Dict, Optional, Type

import lightning as L
import torch

TASK_KEY = "zoo_task"


class TaskModule(L.LightningModule):
    """Base of the zoo's task modules. Records its own class in every checkpoint, so
    :func:`load_task` can rebuild any of them from the file alone."""

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint[TASK_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"


def load_task(path: str | Path, expected: Optional[Type[L.LightningModule]] = None, map_location: str = "cpu") -> L.LightningModule:
    """Rebuild a task module from a Lightning checkpoint written by the zoo. Never unpickles
    arbitrary objects (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    name = checkpoint.get(TASK_KEY)
    if name is None:
        if expected is None:
            raise ValueError(f"{path} was not written by a zoo task (no '{TASK_KEY}' entry); name the class to load it with")
        cls = expected
    else:
        module, _, qualname = name.rpartition(".")
        cls = getattr(importlib.import_module(module), qualname)
        if expected is not None and not issubclass(cls, expected):
            raise ValueError(f"{path} holds a {cls.__name__}, not a {expected.__name__}")
    # LightningCLI adds private keys such as "_class_path" to the saved hyper-parameters.
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
    model = cls(**hparams)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
