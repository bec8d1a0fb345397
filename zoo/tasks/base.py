"""What every task module shares: one optimiser recipe, gradient clipping, and a checkpoint that
knows which class rebuilds it."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Type

import lightning as L
import torch

from zoo.optim import warmup_cosine

TASK_KEY = "zoo_task"


def decay_groups(params: List[torch.nn.Parameter], weight_decay: float) -> List[Dict[str, Any]]:
    """AdamW groups: weight decay on matrices only; biases, norms and other 1-D parameters are exempt."""
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


class TaskModule(L.LightningModule):
    """Base of the zoo's task modules. Records its own class in every checkpoint, so
    :func:`load_task` can rebuild any of them from the file alone."""

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint[TASK_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"

    # ---- optimisation shared by every task: AdamW, warm-up then cosine, clipping by global norm ----
    # Reads the hyper-parameters lr, weight_decay, warmup_steps, min_lr_ratio and grad_clip.
    def param_groups(self) -> List[Dict[str, Any]]:
        """AdamW's groups (:func:`decay_groups` over every trainable parameter). A task with parameters
        that need their own rate (a fine-tuned encoder) overrides this."""
        return decay_groups([p for p in self.parameters() if p.requires_grad], self.hparams.get("weight_decay", 0.0))

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW([g for g in self.param_groups() if g["params"]], lr=hp.lr)
        total = self.trainer.estimated_stepping_batches
        total = int(total) if math.isfinite(total) else None
        scheduler = warmup_cosine(optimizer, hp.get("warmup_steps", 0), total, hp.get("min_lr_ratio", 0.1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.hparams.get("grad_clip")
        if clip:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            self.log("train/grad_norm", torch.nn.utils.clip_grad_norm_(params, clip))

    def save_pretrained(self, directory: str | Path, dtype: Optional[torch.dtype] = None, quantize: Any = None) -> Path:
        """Write this module as a pretrained folder (``config.json`` + ``model.safetensors`` + its
        tokenizer files; see :mod:`zoo.hub`). ``dtype=torch.float16`` halves the size; the weights
        load back as float32. ``quantize="embeddings"`` also stores embedding tables as int8 rows."""
        from zoo.hub import save_pretrained

        return save_pretrained(self, directory, dtype=dtype, quantize=quantize)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> "TaskModule":
        """Load a pretrained folder, registered name, URL or Hub repo id (see
        :func:`zoo.hub.load_pretrained`); the model must be an instance of ``cls``."""
        from zoo.hub import load_pretrained

        return load_pretrained(name_or_path, expected=None if cls is TaskModule else cls, **kwargs)


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
