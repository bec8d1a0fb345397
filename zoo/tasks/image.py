"""What every task that looks at an image shares (:class:`~zoo.tasks.captioner.ImageCaptioner`,
:class:`~zoo.tasks.vqa.VisualQuestionAnswerer`): the encoder, its grid of features, raw images at
inference, and the attention figures logged during validation.

- **The encoder.** Any timm model (:class:`~zoo.encoders.ImageEncoder`), built without weights; the
  pretrained ones (timm's, or ``weights_path``) are fetched later, at setup or first use, so a run
  whose data is missing says so before anything is downloaded. A state dict (a checkpoint, a
  pretrained folder) brings the encoder's weights with it, and a checkpoint never fetches them again.
- **The grid.** ``a_1..a_L = encoder(image)`` (or the datamodule's cached features of a frozen
  encoder), each location through the learned per-location projection of
  :func:`~zoo.encoders.grid_adapter` (``norm``, ``project``), which the task creates in ``build``.
- **Raw images.** Paths, PIL images or uint8 ``(H, W, 3)`` arrays get the preprocessing recorded at
  training time (``image_config``); :meth:`ImageTask.display_image` is the picture the model saw.
- **Figures and epochs.** A task's ``eval_step(batch, batch_idx, split)`` scores a batch and, when
  :meth:`ImageTask.figures_due` says so, keeps :class:`Figure` s; ``epoch_scores(split)`` logs the
  epoch's measures. This base runs the epochs (validation and test alike), prints the scores and draws
  the figures on the datamodule's :meth:`~datamodules.image_data.ImageDataModule.preview`.
- **Optimisation.** The shared AdamW groups, plus a trainable encoder at its own rate ``encoder_lr``.

The task declares the hyper-parameters ``encoder``, ``pretrained``, ``trainable``, ``weights_path``,
``coordinates``, ``encoder_lr`` and ``log_images`` (and ``cache_features`` where it caches).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from datamodules.images import CorruptImageError, ImageConfig, as_rgb_image
from datamodules.tokenizers import load_tokenizer
from zoo.encoders import ImageEncoder, adapt_grid, weights_key
from zoo.tasks.base import TaskModule, decay_groups
from zoo.tasks.data import FeatureCacheData, PreviewData
from zoo.viz import attention_figure_array


@dataclass
class Figure:
    """One attention figure: validation image ``index``, a panel per label (a word, a hop) with its
    ``weights`` row over the grid, the figure's ``title`` and the logger's ``caption``."""

    index: int
    labels: Sequence[str]
    weights: Optional[Tensor]
    caption: str
    title: str = ""


class ImageTask(TaskModule):
    """Base of the tasks that read an image through a timm encoder (see the module docstring)."""

    encoder: Optional[ImageEncoder]

    def init_encoder(self, image: bool = True) -> None:
        """The encoder of ``hparams.encoder`` without its pretrained weights (``image=False``: none)."""
        hp = self.hparams
        self.encoder = ImageEncoder(hp.encoder, False, hp.trainable, None) if image else None
        self._needs_pretrained = bool(image and (hp.pretrained or hp.weights_path))
        self.figures: List[Figure] = []

    def load_pretrained_encoder(self) -> None:
        """Load the encoder's pretrained weights (timm's, or ``weights_path``) if not done yet."""
        if not self._needs_pretrained:
            return
        hp = self.hparams
        self.encoder.load_state_dict(ImageEncoder(hp.encoder, hp.pretrained, hp.trainable, hp.weights_path).state_dict())
        self._needs_pretrained = False

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._needs_pretrained = False  # the encoder's weights come with the state dict
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def same_data(self, key: str, mine: Any, theirs: Any) -> bool:
        if key == "tokenizer_json":  # the same words with the same ids is the same vocabulary
            return load_tokenizer(mine).get_vocab() == load_tokenizer(theirs).get_vocab()
        return super().same_data(key, mine, theirs)

    def setup(self, stage: str) -> None:
        self.load_pretrained_encoder()
        # Sharp attention leaves weights like 1e-40: subnormal floats, which make CPU matmuls several
        # times slower (measured: 3x per training step). Flushing them to zero changes nothing that
        # matters; it is process-wide and only where the CPU supports it.
        torch.set_flush_denormal(True)
        super().setup(stage)
        data_encoder = getattr(self.datamodule, "encoder_name", None)
        if self.encoder is not None and data_encoder and data_encoder != self.hparams.encoder:
            warnings.warn(
                f"the datamodule prepares images for encoder {data_encoder!r} but the model's encoder is "
                f"{self.hparams.encoder!r}: the input size and normalization may not fit; set both to the same name"
            )

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        # The encoder's weights are in the state dict: rebuilding from the checkpoint must not fetch them.
        hp = checkpoint.get("hyper_parameters")
        if hp is not None:
            hp["pretrained"], hp["weights_path"] = False, None

    # ---- the feature cache of a frozen encoder -----------------------------------------------------
    def attach_cache(self) -> None:
        """With a frozen encoder and ``cache_features``, serve the datamodule's cached features (built
        once, by rank 0) instead of images (:class:`~zoo.tasks.data.FeatureCacheData`)."""
        hp = self.hparams
        datamodule = self.datamodule
        if hp.trainable or not hp.get("cache_features") or not isinstance(datamodule, FeatureCacheData):
            return
        if self.trainer.fast_dev_run:  # a smoke test touches a batch or two: encoding them is cheaper
            return
        key = weights_key(self.encoder, hp.encoder)

        def encode(images: Tensor) -> Tensor:
            self.encoder.eval()
            return self.encoder(images)[0]

        if self.trainer.is_global_zero:
            datamodule.attach_features(encode, key, device=self.device)
        self.trainer.strategy.barrier("zoo-feature-cache")
        if not self.trainer.is_global_zero:
            datamodule.attach_features(encode, key, device=self.device, build=False)

    def on_fit_start(self) -> None:
        self.attach_cache()

    def on_validation_start(self) -> None:
        if self.trainer.state.fn != "fit":
            self.attach_cache()

    def on_test_start(self) -> None:
        self.attach_cache()

    # ---- the grid ------------------------------------------------------------------------------------
    def image_features(self, batch: Dict[str, Tensor]) -> Tensor:
        """The encoder's grid ``(B, L, C)``: of ``images``, or the cached ``features``."""
        if "features" in batch:
            return batch["features"].to(next(self.parameters()).dtype)
        self.load_pretrained_encoder()
        return self.encoder(batch["images"])[0]

    def adapted_grid(self, batch: Dict[str, Tensor]) -> Tensor:
        """Each location through the task's projection (:func:`~zoo.encoders.adapt_grid`): ``(B, L, M)``."""
        return adapt_grid(self.image_features(batch), self.norm, self.project, self.hparams.coordinates)

    # ---- raw images ------------------------------------------------------------------------------------
    def image_config(self) -> ImageConfig:
        """The preprocessing recorded at training time (or the encoder's default)."""
        if self.hparams.image_config:
            return ImageConfig(**self.hparams.image_config)
        return ImageConfig.for_encoder(self.hparams.encoder)

    def display_image(self, image: Any) -> np.ndarray:
        """The picture as the model sees it (resized and cropped, not normalised), for figures."""
        return np.asarray(self.image_config().geometric()(as_rgb_image(image)))

    def image_batch(self, images: Sequence[Any]) -> Tensor:
        """Raw images (paths, PIL images, uint8 arrays) as the model's input ``(B, 3, S, S)`` on its device."""
        transform = self.image_config().transform()
        return torch.stack([transform(as_rgb_image(x)) for x in images]).to(self.device)

    @staticmethod
    def image_list(images: Any) -> List[Any]:
        """One image (a path, a uint8 array, a PIL image) as a list of one; a list as it is."""
        single = isinstance(images, (str, Path, np.ndarray, Image.Image))
        return [images] if single else list(images)

    @staticmethod
    def image_name(image: Any, position: int) -> Any:
        """How a result names its image: the path, or its position among the inputs."""
        return str(image) if isinstance(image, (str, Path)) else position

    # ---- evaluation epochs and their figures -----------------------------------------------------------
    def start_eval(self) -> None:
        """Reset what ``eval_step`` gathers over an epoch."""
        raise NotImplementedError

    def eval_step(self, batch: Dict[str, Any], batch_idx: int, split: str) -> None:
        raise NotImplementedError

    def epoch_scores(self, split: str) -> Dict[str, float]:
        """Log and return the epoch's measures as ``<split>/<name>``."""
        raise NotImplementedError

    def figures_due(self, split: str, batch_idx: int) -> int:
        """How many figures to keep from this batch: ``log_images`` on the first validation batch."""
        if split != "val" or batch_idx != 0 or self.trainer.sanity_checking:
            return 0
        return max(int(self.hparams.log_images), 0)

    def on_validation_epoch_start(self) -> None:
        self.figures = []
        self.start_eval()

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self.eval_step(batch, batch_idx, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self.eval_step(batch, batch_idx, "test")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        scores = self.epoch_scores("val")
        if self.figures and self.trainer.is_global_zero:
            self.log_figures(self.figures)
        if scores:
            self.print(f"step {self.global_step}: " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()))

    def on_test_epoch_end(self) -> None:
        scores = self.epoch_scores("test")
        if scores:
            self.print("test: " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()))

    def log_figures(self, figures: Sequence[Figure]) -> None:
        """Each figure drawn over its validation image (the datamodule's ``preview``), logged as
        ``val/attention``; an image gone or unreadable is skipped with a warning."""
        datamodule = self.datamodule
        if not isinstance(datamodule, PreviewData):
            return
        pictures, captions = [], []
        for figure in figures:
            try:
                image = datamodule.preview("val", figure.index)
            except (OSError, CorruptImageError) as err:  # the data's file, gone or unreadable: not worth a run
                warnings.warn(f"no attention figure for validation example {figure.index}: {err}")
                continue
            pictures.append(attention_figure_array(image, figure.labels, figure.weights, title=figure.title))
            captions.append(figure.caption)
        self.log_images("val/attention", pictures, captions)

    # ---- optimisation ------------------------------------------------------------------------------
    def param_groups(self) -> List[Dict[str, Any]]:
        """The shared AdamW groups (:class:`~zoo.tasks.base.TaskModule`), plus a trainable encoder at ``encoder_lr``."""
        hp = self.hparams
        encoder = [p for p in self.encoder.parameters() if p.requires_grad] if self.encoder is not None else []
        ids = {id(p) for p in encoder}
        groups = decay_groups([p for p in self.parameters() if p.requires_grad and id(p) not in ids], hp.weight_decay)
        if encoder:
            groups.append({"params": encoder, "weight_decay": hp.weight_decay, "lr": hp.encoder_lr})
        return groups
