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

import contextlib
import inspect
import logging
import math
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

import lightning as L
import torch

from zoo.graphs import ExportError, Graph
from zoo.hub.errors import PretrainedError
from zoo.hub.format import read_folder, write_folder
from zoo.hub.registry import model_entry
from zoo.hub.schema import check_args, offline
from zoo.hub.sources import entry_folder, locate
from zoo.optim import warmup_cosine
from zoo.tasks.data import MeasuringData
from zoo.tasks.resolve import TASK_KEY, class_path, read_checkpoint, resolve_task, state_mismatch

#: how a task reads a hyper-parameter off its datamodule: an attribute name, or a function of it
DataSource = Union[str, Callable[[Any], Any]]


def decay_groups(params: List[torch.nn.Parameter], weight_decay: float) -> List[Dict[str, Any]]:
    """AdamW groups: weight decay on matrices only; biases, norms and other 1-D parameters are exempt."""
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


@dataclass(frozen=True)
class Optimiser:
    """The arguments of the one optimiser recipe every task trains with, declared once: AdamW at peak
    rate ``lr`` with ``weight_decay`` on matrices only (:func:`decay_groups`), a linear warm-up over
    ``warmup_steps`` and then a cosine down to ``min_lr_ratio * lr`` over the run's planned steps
    (:func:`zoo.optim.warmup_cosine`), gradients clipped to global norm ``grad_clip`` (0 = off).

    Every task takes them as init arguments through ``**optimiser`` (``--model.lr`` on the command line,
    ``lr:`` in a recipe, recorded in checkpoints and pretrained folders); ``None`` means the task's own
    default, its class attribute ``optimiser``."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: Optional[float] = 1.0


#: the optimiser's init arguments, in the order of :class:`Optimiser`
OPTIMISER_ARGS: Tuple[str, ...] = tuple(f.name for f in fields(Optimiser))


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
    #: the hyper-parameters that users of the exported graphs need, written to ``graphs.json`` (zoo.export)
    exported_settings: ClassVar[Tuple[str, ...]] = ()
    #: how ``zoo models --evaluate`` scores the task without a datamodule: the name of a scorer in
    #: :mod:`zoo.scoring` (its data options are that function's arguments); ``None`` = on a datamodule only
    scorer: ClassVar[Optional[str]] = None

    #: the init arguments that size the network, and what bounds each: ``"layers"`` (a count of layers or
    #: modules: at most the number of tensors) or ``"width"`` (at most the number of weights). Loading
    #: refuses a value the weights cannot hold before anything is built (:func:`load_task`).
    sizes: ClassVar[Mapping[str, str]] = {"embedding_dim": "width", "hidden_size": "width", "num_layers": "layers"}
    #: this task's defaults of the shared optimiser arguments (what an argument left ``None`` takes)
    optimiser: ClassVar[Optimiser] = Optimiser()

    def __init__(
        self,
        lr: Optional[float] = None,
        weight_decay: Optional[float] = None,
        warmup_steps: Optional[int] = None,
        min_lr_ratio: Optional[float] = None,
        grad_clip: Optional[float] = None,
    ) -> None:
        """
        Args:
            lr: AdamW's peak learning rate (``None``: the task's default).
            weight_decay: AdamW's decay, on matrices only (``None``: the task's default).
            warmup_steps: linear warm-up steps, then a cosine over the run's planned steps (``None``: the task's default).
            min_lr_ratio: where the cosine ends, as a fraction of ``lr`` (``None``: the task's default).
            grad_clip: clip the global gradient norm to this (0 = no clipping) (``None``: the task's default).

        Each ``None`` takes the task's default (its ``optimiser``, :class:`Optimiser`).
        """
        super().__init__()
        self.built = False
        given = dict(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio, grad_clip=grad_clip)
        self._optimiser = replace(type(self).optimiser, **{k: v for k, v in given.items() if v is not None})

    def save_hyperparameters(self, *args: Any, ignore: Any = None, frame: Any = None, logger: bool = True) -> None:
        """Lightning's, from the caller's ``__init__``, plus the optimiser arguments as resolved (the
        task's defaults in place of ``None``), so that every checkpoint records the values it trained with."""
        super().save_hyperparameters(*args, ignore=ignore, frame=frame or inspect.currentframe().f_back, logger=logger)
        for key in OPTIMISER_ARGS:
            self.hparams[key] = getattr(self._optimiser, key)

    @property
    def optimiser_args(self) -> Optimiser:
        """The optimiser arguments this module trains with (:class:`Optimiser`)."""
        hp = self.hparams
        return replace(self._optimiser, **{k: hp[k] for k in OPTIMISER_ARGS if hp.get(k) is not None})

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
            raise RuntimeError(
                f"this {type(self).__name__} is not built yet: {missing} come(s) from a datamodule at "
                "setup; train it first, or load a checkpoint or a pretrained model"
            )

    # ---- inference ---------------------------------------------------------------------------------
    def predict(self, inputs: Any, **options: Any) -> List[Dict[str, Any]]:
        """Raw inputs (strings, image paths, video files, ...) -> one dict per input, in order; a bad
        input is a :class:`zoo.errors.UserError` (an ``InputError``, ``CorruptImageError``, ...) naming it."""
        raise NotImplementedError

    def export_graphs(self, batch: int = 2, length: int = 5) -> List[Graph]:
        """The task's inference graphs (:mod:`zoo.graphs`), with example inputs of ``batch`` rows and
        ``length`` steps, traced by :mod:`zoo.export`. A task without any raises :class:`ExportError`."""
        raise ExportError(f"{type(self).__name__} is not exportable: the task declares no inference graphs (export_graphs)")

    def score(self, data: Any, limit: Optional[int] = None) -> Dict[str, float]:
        """This model measured on ``data``'s test split the way its recipe measures it. By default the
        task's own test step (what ``zoo test`` logs; ``test/x`` reported as ``test_x``), on one CPU
        process without a logger, over at most ``limit`` test batches. A task that scores raw
        examples instead (the classifier) overrides this."""
        return test_scores(self, data, limit)

    def predict_records(self, inputs: Any, strict: bool = False, **options: Any) -> List[Dict[str, Any]]:
        """:meth:`predict` under the input contract (:mod:`zoo.records`): one record per input, in order,
        ``{"index": i, **result}``, or ``{"index": i, "error": "input i: why"}`` for a bad input while
        the others go on; ``strict``: the first bad input raises instead. The same for every task."""
        from zoo.records import items_of, predict_records

        return list(predict_records(lambda values: self.predict(values, **options), items_of(inputs), strict))

    def data_measures(self, batch: Dict[str, Any], predictions: List[Dict[str, Any]]) -> Dict[str, List[float]]:
        """Measures only the data can compute (e.g. ShapesCaptions' attention inside the named object's
        box): the datamodule's ``evaluation_measures(batch, predictions)``, or nothing."""
        datamodule = self.datamodule
        return datamodule.evaluation_measures(batch, predictions) if isinstance(datamodule, MeasuringData) else {}

    def log_images(self, key: str, images: List[Any], captions: List[str]) -> None:
        """Pictures (``(H, W, 3)`` arrays) to every logger that takes images (W&B), at this step. A
        logger without images is skipped; an error (a bad picture, captions that do not match) raises:
        it is a bug in the figure code, which a warning would hide from every test."""
        for logger in self.trainer.loggers:
            if hasattr(logger, "log_image") and images:
                logger.log_image(key=key, images=images, caption=captions, step=self.global_step)

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint[TASK_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"

    def global_mean(self, mean: torch.Tensor, count: Union[torch.Tensor, int]) -> torch.Tensor:
        """A loss averaged over this rank's ``count`` items (examples, tokens, frames), made the mean over
        the global batch. One process: ``mean`` itself. Training under DDP with ``R`` ranks -- which
        averages gradients over the ranks -- this rank's share ``R * count * mean / N`` of the mean over
        all ranks' ``N`` items (one scalar all-reduce): the averaged gradient is the whole global batch's
        mean, as one process computes it, however unevenly the items (a batch's tokens) fall on the
        ranks (docs/reliability.md, "DDP equals one process")."""
        trainer = self._trainer
        if not self.training or trainer is None or trainer.world_size == 1:
            return mean
        count = torch.as_tensor(count, dtype=mean.dtype, device=mean.device)
        total = trainer.strategy.reduce(count.clone(), reduce_op="sum").clamp(min=1)
        return mean * count * trainer.world_size / total

    # ---- optimisation shared by every task: AdamW, warm-up then cosine, clipping by global norm ----
    def param_groups(self) -> List[Dict[str, Any]]:
        """AdamW's groups (:func:`decay_groups` over every trainable parameter). A task with parameters
        that need their own rate (a fine-tuned encoder) overrides this."""
        return decay_groups([p for p in self.parameters() if p.requires_grad], self.optimiser_args.weight_decay)

    def configure_optimizers(self):
        args = self.optimiser_args
        optimizer = torch.optim.AdamW([g for g in self.param_groups() if g["params"]], lr=args.lr)
        total = self.trainer.estimated_stepping_batches
        total = int(total) if math.isfinite(total) else None
        scheduler = warmup_cosine(optimizer, args.warmup_steps, total, args.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.optimiser_args.grad_clip
        if clip:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            self.log("train/grad_norm", torch.nn.utils.clip_grad_norm_(params, clip))

    def save_pretrained(self, directory: str | Path, dtype: Optional[torch.dtype] = None, quantize: Any = None) -> Path:
        """Write this module as a pretrained folder (``config.json`` + ``model.safetensors`` + its
        tokenizer files; see :mod:`zoo.hub.format`). ``dtype=torch.float16`` halves the size; the weights
        load back as float32. ``quantize="embeddings"`` also stores embedding tables as int8 rows."""
        return write_folder(self, directory, dtype=dtype, quantize=quantize)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> "TaskModule":
        """Load a pretrained folder, registered name, URL or Hub repo id (see :func:`load_pretrained`);
        the model must be an instance of ``cls``."""
        return load_pretrained(name_or_path, expected=None if cls is TaskModule else cls, **kwargs)


def test_scores(model: L.LightningModule, datamodule: Any, limit_batches: Optional[int] = None) -> Dict[str, float]:
    """What ``model``'s test step logs on ``datamodule``'s test split (one CPU process, no logger, no
    banner on stdout), with ``test/x`` renamed ``test_x``: the recipe's own measurement, on any weights."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the task's own printing to stderr: stdout is the scores
            trainer = L.Trainer(
                accelerator="cpu",
                devices=1,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                limit_test_batches=limit_batches if limit_batches is not None else 1.0,
            )
            logged = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    finally:
        logger.setLevel(level)
    return {key.replace("/", "_"): float(value) for key, value in sorted(logged.items())}


# ---- loading ------------------------------------------------------------------------------------
# Files name their task class as data; zoo.tasks.resolve decides which names may become classes
# (a TaskModule subclass from zoo.tasks or from a module the caller named), before anything is
# imported or called. The hub (zoo.hub) finds and reads the files; this section builds the modules.
def _allowed(expected: Optional[type], allow_modules: Sequence[str]) -> List[str]:
    # A class the caller passed in code is trusted, and so is the module it comes from.
    return [*allow_modules, *([expected.__module__] if expected is not None else [])]


def init_arguments(cls: type) -> Optional[List[str]]:
    """The arguments ``cls(...)`` accepts by name, following ``**kwargs`` up the class hierarchy (a
    task's ``**optimiser`` reaches :class:`TaskModule`); ``None`` when it takes any keyword."""
    names: List[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in names
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def _check_args(cls: type, args: Mapping[str, Any], where: str) -> None:
    params = init_arguments(cls)
    if params is None:
        return
    unknown = sorted(set(args) - set(params))
    if unknown:
        valid = ", ".join(params)
        raise PretrainedError(f"{where}: {cls.__name__} has no argument {', '.join(unknown)} (it takes: {valid})")


def _check_sizes(args: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str, sizes: Mapping[str, str]) -> None:
    """Refuse a size the weights cannot have before anything is built: even on the meta device a
    module takes time for every layer (num_layers=10**6 would never finish), and for real, memory for
    every unit. ``sizes``: the task's declaration (:attr:`TaskModule.sizes`); a layer count is at most
    the number of tensors, a width at most the number of weights."""
    tensors, weights = len(state), sum(t.numel() for t in state.values())
    for key, value in args.items():
        if isinstance(value, int) and not isinstance(value, bool) and key in sizes:
            bound, what = (tensors, "tensors") if sizes[key] == "layers" else (weights, "weights")
            if value > bound:
                raise PretrainedError(f"{where}: init arg {key}={value} cannot fit weights that hold {bound:,} {what} in all")


def _build(
    cls: type, init_args: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str, overrides: Mapping[str, Any]
) -> "TaskModule":
    """``cls(**init_args, **overrides)`` with ``state`` loaded, in eval mode; a clear error naming
    ``where`` when the arguments or the weights do not fit the class. The file's ``init_args`` are
    held to :mod:`zoo.hub.schema` (bounds, no network: ``pretrained``/``weights_path`` switched off,
    the weights are ``state``); the caller's ``overrides`` are not."""
    check_args({k: v for k, v in init_args.items() if k not in overrides}, where)
    args = {**offline(init_args), **overrides}
    _check_args(cls, args, where)
    _check_sizes(args, state, where, cls.sizes)
    # Then on the meta device, which allocates nothing: init args of the wrong type, or sizes such as
    # hidden_size=10**12 that the weights do not have, are refused before a byte of memory is taken.
    try:
        with torch.device("meta"):
            skeleton = cls(**args)
    except Exception as e:  # noqa: BLE001 - whatever the file's values break in the constructor
        raise PretrainedError(f"{where}: its init args do not build {cls.__name__} ({type(e).__name__}: {e})") from e
    if isinstance(skeleton, TaskModule) and not skeleton.built:  # no data hyper-parameters: it would load half-built
        lacking = ", ".join(k for k in cls.required_data if args.get(k) is None)
        raise PretrainedError(
            f"{where}: incomplete: {cls.__name__} cannot be built without {lacking}, which the file does not hold"
        )
    if not state:
        raise PretrainedError(
            f"{where}: holds no weights (an empty state dict); expected the {cls.__name__} weights written by `zoo fit` or save_pretrained"
        )
    mismatch = state_mismatch(skeleton.state_dict(), state)
    if mismatch:
        built = ", ".join(f"{k}=..." for k in overrides) or "its saved arguments"
        raise PretrainedError(f"{where}: the weights do not fit {cls.__name__}({built}): {mismatch}")
    model = cls(**args)
    # load_state_dict copies into the module's own (float32) tensors.
    model.load_state_dict(dict(state))
    return model.eval()


def _expect(cls: type, expected: Optional[type], where: str) -> None:
    if expected is not None and not issubclass(cls, expected):
        raise PretrainedError(f"{where} holds a {cls.__name__}, not a {expected.__name__}")


def load_task(
    path: str | Path, expected: Optional[Type[TaskModule]] = None, map_location: str = "cpu", allow_modules: Sequence[str] = ()
) -> TaskModule:
    """Rebuild a task module from a Lightning checkpoint written by ``zoo fit``, in eval mode. The
    file is read with ``weights_only=True`` and its ``zoo_task`` entry goes through
    :func:`zoo.tasks.resolve.resolve_task`: only a zoo task class (or one from ``expected``'s module or
    ``allow_modules``) is ever built. ``expected``: the class the model must be an instance of (and
    the class to use for a checkpoint that does not record one)."""
    name, hparams, state = read_checkpoint(path)
    where = str(path)
    if name is None:
        if expected is None:
            raise PretrainedError(
                f"{path} was not written by a zoo task (no '{TASK_KEY}' entry); name the class to load it with (--task module.Class)"
            )
        cls = expected
    elif expected is not None and name == class_path(expected):
        cls = expected
    else:
        cls = resolve_task(name, TaskModule, where, _allowed(expected, allow_modules))
        _expect(cls, expected, where)
    return _build(cls, hparams, state, where, {}).to(map_location)


def load_pretrained(
    name_or_path: str | Path,
    expected: Optional[Type[TaskModule]] = None,
    *,
    sha256: Optional[str] = None,
    revision: Optional[str] = None,
    endpoint: Optional[str] = None,
    token: Optional[str] = None,
    allow_modules: Sequence[str] = (),
    **overrides: Any,
) -> TaskModule:
    """Load a pretrained module (in eval mode) from a registered name, a local folder or archive, an
    http(s) URL (folder or archive; pin with ``sha256=`` or ``#sha256=``) or a Hugging Face Hub repo id
    (``owner/name``, ``hf://owner/name@revision``; ``endpoint``/``token`` for the Hub client); see
    :func:`zoo.hub.sources.locate`. ``expected``: a task class the model must be an instance of.
    ``overrides``: init args to change (e.g. ``dropout=0.0``); they must keep the weights' shapes."""
    folder = locate(name_or_path, sha256=sha256, revision=revision, endpoint=endpoint, token=token)
    return _from_folder(folder, expected, allow_modules, overrides)


def _from_folder(
    folder: Path, expected: Optional[Type[TaskModule]], allow_modules: Sequence[str], overrides: Mapping[str, Any]
) -> TaskModule:
    """The module of a verified local pretrained folder (:func:`load_pretrained`'s second half)."""
    config, state = read_folder(folder)
    where = str(Path(folder) / "config.json")
    cls = resolve_task(config["task"], TaskModule, where, _allowed(expected, allow_modules))
    _expect(cls, expected, str(folder))
    return _build(cls, config["init_args"], state, where, overrides)


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> TaskModule:
    """Build the registered model ``name``: its configuration with ``overrides`` applied, untrained,
    or with its pretrained weights (``pretrained=True``; overrides must then keep the shapes)."""
    entry = model_entry(name)  # the registry, asked once: an unknown name fails here, with the closest names
    if pretrained:
        return _from_folder(entry_folder(entry), None, (), overrides)
    where = f"model {name!r}"
    cls = resolve_task(entry.task, TaskModule, where)
    args = {**entry.init_args, **overrides}
    _check_args(cls, args, where)
    return cls(**args)
