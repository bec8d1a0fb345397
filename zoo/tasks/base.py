"""The task contract: what every task module of the zoo offers, written once.

- **Built from its data, the same way in every task.** A module whose size depends on the data
  (vocabulary, labels, tokenizer) lists those hyper-parameters in :attr:`TaskModule.data_hparams`.
  Given at construction (a checkpoint, a pretrained folder), the module builds at once; left ``None``,
  :meth:`TaskModule.setup` takes them from the datamodule, records them in ``hparams`` (so every
  checkpoint rebuilds itself) and then calls the task's :meth:`~TaskModule.build`, once.
- **Raw inputs in, a list of dicts out.** ``predict(inputs, **options)`` works on strings, image paths
  or video files; ``predict_step`` returns the same dicts, so ``zoo predict`` writes JSON lines for any
  recipe.
- **One optimiser recipe** (AdamW, warm-up then cosine, clipping by global norm), and a checkpoint
  that knows which class rebuilds it.
"""

from __future__ import annotations

import importlib
import math
import warnings
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple, Type, Union

import lightning as L
import torch

from zoo.optim import warmup_cosine

TASK_KEY = "zoo_task"

#: how a task reads a hyper-parameter off its datamodule: an attribute name, or a function of it
DataSource = Union[str, Callable[[Any], Any]]


def decay_groups(params: List[torch.nn.Parameter], weight_decay: float) -> List[Dict[str, Any]]:
    """AdamW groups: weight decay on matrices only; biases, norms and other 1-D parameters are exempt."""
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def _plain(value: Any) -> Any:
    """Tuples as lists, so that a datamodule's tuple and a checkpoint's list compare equal."""
    return list(value) if isinstance(value, tuple) else value


class TaskModule(L.LightningModule):
    """Base of the zoo's task modules (see the module docstring for the contract).

    A task declares :attr:`data_hparams` (hyper-parameter -> datamodule attribute), which of them
    :attr:`required_data` it cannot build without and which :attr:`must_match` the datamodule's when
    both are given; it implements :meth:`build`, :meth:`predict` and ``predict_step``."""

    #: hyper-parameter -> where the datamodule holds it (attribute name, or a function of the datamodule)
    data_hparams: ClassVar[Mapping[str, DataSource]] = {}
    #: the data hyper-parameters :meth:`build` needs
    required_data: ClassVar[Tuple[str, ...]] = ()
    #: the data hyper-parameters that must equal the datamodule's (else the model was built for other data)
    must_match: ClassVar[Tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.built = False

    # ---- building from the data ------------------------------------------------------------------
    def build(self) -> None:
        """Create the layers from ``self.hparams`` (all of :attr:`required_data` is known by now)."""
        raise NotImplementedError

    def build_if_ready(self) -> None:
        """Build now if every required data hyper-parameter is known (call at the end of ``__init__``)."""
        if not self.built and all(self.hparams.get(key) is not None for key in self.required_data):
            self.build()
            self.built = True

    @property
    def datamodule(self) -> Optional[L.LightningDataModule]:
        """The trainer's datamodule, or ``None`` outside a trainer."""
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def same_data(self, key: str, mine: Any, theirs: Any) -> bool:
        """Whether the model's ``key`` fits the datamodule's (a task may compare more loosely)."""
        return _plain(mine) == _plain(theirs)

    def adopt_data(self, datamodule: Any) -> None:
        """Fill the data hyper-parameters left ``None`` from ``datamodule`` and check the others."""
        name = type(self).__name__
        for key, source in self.data_hparams.items():
            if datamodule is None:
                theirs = None
            elif callable(source):
                theirs = source(datamodule)
            else:
                theirs = getattr(datamodule, source, None)
            theirs = _plain(theirs)
            mine = self.hparams.get(key)
            if mine is None:
                self.hparams[key] = theirs  # recorded in the hyper-parameters: the checkpoint rebuilds itself
            elif key in self.must_match and theirs is not None and not self.same_data(key, mine, theirs):
                raise ValueError(
                    f"{name}'s {key} differs from the datamodule's ({type(datamodule).__name__}): the model was "
                    "built for other data (another vocabulary or label set); use the data settings it was trained with"
                )
        for key in self.required_data:
            if self.hparams.get(key) is None:
                source = self.data_hparams[key]
                where = f"`{source}`" if isinstance(source, str) else "it"
                raise ValueError(f"{name} needs {key}: pass it, or train with a datamodule that provides {where} after its setup")

    def setup(self, stage: str) -> None:
        self.adopt_data(self.datamodule)
        self.build_if_ready()

    def check_built(self) -> None:
        """A clear error for a module used before it knows its data."""
        if not self.built:
            missing = ", ".join(k for k in self.required_data if self.hparams.get(k) is None)
            raise RuntimeError(f"this {type(self).__name__} is not built yet: {missing} come(s) from a datamodule at "
                               "setup; train it first, or load a checkpoint or a pretrained model")

    # ---- inference ---------------------------------------------------------------------------------
    def predict(self, inputs: Any, **options: Any) -> List[Dict[str, Any]]:
        """Raw inputs (strings, image paths, video files, ...) -> one dict per input."""
        raise NotImplementedError

    def data_measures(self, batch: Dict[str, Any], predictions: List[Dict[str, Any]]) -> Dict[str, List[float]]:
        """Measures only the data can compute (e.g. ShapesCaptions' attention inside the named object's
        box): the datamodule's ``evaluation_measures(batch, predictions)``, or nothing."""
        measure = getattr(self.datamodule, "evaluation_measures", None)
        return measure(batch, predictions) if measure is not None else {}

    def log_images(self, key: str, images: List[Any], captions: List[str]) -> None:
        """Pictures (``(H, W, 3)`` arrays) to every logger that takes images (W&B), at this step."""
        for logger in self.trainer.loggers:
            if not hasattr(logger, "log_image") or not images:
                continue
            try:
                logger.log_image(key=key, images=images, caption=captions, step=self.global_step)
            except Exception as err:  # a picture must never stop training
                warnings.warn(f"could not log {key} to {type(logger).__name__}: {err}")

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
