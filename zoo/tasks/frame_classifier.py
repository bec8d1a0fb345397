"""`FrameClassifier`: many-to-many, synchronous, over video frames — a label for every frame.

    v_t = CNN(frame_t)                       per-frame features (a timm backbone through
                                             ImageEncoder, frozen or fine-tuned; or features
                                             precomputed on disk)
    h_t = Recurrent(v_t, h_{t-1})            unidirectional: h_t sees frames 1..t only (online);
                                             bidirectional: [h_t(fwd); h_t(bwd)] sees the whole clip
    p(y_t | frames) = softmax(W_hy h_t + b_y)

``recurrent: false`` is the baseline: the same backbone and a per-frame MLP of the same width,
``p(y_t | frame_t)`` — it can only get right what a single frame shows. ``target: clip`` gives one
label per clip (many-to-one) from the same module: the final state (both directions' when
bidirectional; the mean of the per-frame MLP features without recurrence) goes through the head.

Metrics: ``val/frame_acc`` (every labelled real frame), ``val/clip_acc`` (per-frame mode: the clip
is the class with the highest mean log-probability over its frames), and where the batch says which
frames need memory (MovingShapes' ``needs_memory``) ``val/memory_acc`` on those frames and
``val/direct_acc`` on the rest.

Causality and padding: the backbone runs on each real frame alone (padded frames are never fed to
it) and ``Recurrent`` packs the batch, so in eval mode the unidirectional output at frame t depends
on frames 1..t of its own clip only. (A fine-tuned backbone with BatchNorm normalises with batch
statistics in training mode, which mixes frames of a batch: eval mode is the online model.)
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from datamodules.loaders import IGNORE, pad_clips
from datamodules.video_io import read_clip
from zoo.encoders import ImageEncoder
from zoo.errors import InputError
from zoo.graphs import ExportError, Graph, batch_axes, next_names, state_args, state_inputs, state_outs
from zoo.recurrent import Recurrent
from zoo.sequences import State, evaluating, lengths_to_mask, top_state
from zoo.streaming import Stream, check_streamable
from zoo.tasks.base import Optimiser, TaskModule

__all__ = ["FrameClassifier"]

TARGETS = ("frame", "clip")


def _frame_size(datamodule: Any) -> Optional[int]:
    """The frame size a datamodule resizes to (its ``size`` argument), for :meth:`FrameClassifier.predict`."""
    hparams = getattr(datamodule, "hparams", None) or {}
    return hparams.get("size") if isinstance(hparams, Mapping) else None


class FrameClassifier(TaskModule):
    data_hparams = {"label_names": "label_names", "feature_dim": "feature_dim", "frame_size": _frame_size}
    required_data = ("label_names",)
    must_match = ("label_names",)
    exported_settings = ("label_names",)
    optimiser = Optimiser(lr=1e-3, weight_decay=0.0, warmup_steps=0, min_lr_ratio=0.1, grad_clip=1.0)
    sizes = {**TaskModule.sizes, "feature_dim": "width"}
    scorer = "score_moving_shapes"

    def __init__(
        self,
        label_names: Optional[List[str]] = None,
        frame_size: Optional[int] = None,
        encoder: Optional[str] = "resnet18",
        pretrained: bool = False,
        trainable: bool = True,
        weights_path: Optional[str] = None,
        feature_dim: Optional[int] = None,
        recurrent: bool = True,
        cell: str = "gru",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        backend: str = "native",
        target: str = "frame",
        **optimiser: Any,
    ) -> None:
        """
        Args:
            label_names: the class names; ``None`` = the datamodule's (``label_names``) at setup.
            frame_size: frames are resized (short side) and centre-cropped to this by :meth:`predict`
                (``None`` = the datamodule's ``size`` at setup; as it was in training).
            encoder: a timm model name for the per-frame backbone (``zoo_frame_cnn``: a small CNN
                for 32-64 px frames), or ``None`` when the datamodule gives precomputed ``features``.
            pretrained, trainable, weights_path: see :class:`~zoo.encoders.ImageEncoder`
                (``trainable: false`` freezes the backbone).
            feature_dim: size of precomputed features (``encoder: null``); ``None`` = the datamodule's.
            recurrent: ``false`` = the baseline: the same backbone, a per-frame MLP, no memory.
            cell, hidden_size, num_layers, dropout, backend: the :class:`~zoo.recurrent.Recurrent`.
            bidirectional: ``false`` for online use (a frame's output sees only the past), ``true``
                for offline use (the whole clip).
            target: ``frame`` (a label per frame, many-to-many) or ``clip`` (one per clip, many-to-one).
            **optimiser: the shared optimiser arguments ``lr``, ``weight_decay``, ``warmup_steps``,
                ``min_lr_ratio``, ``grad_clip`` (:class:`~zoo.tasks.base.Optimiser`); this task's defaults: ``optimiser``.
        """
        super().__init__(**optimiser)
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.save_hyperparameters()
        self.build_if_ready()

    # ---- construction ------------------------------------------------------------------------
    def build(self) -> None:
        hp = self.hparams
        num_classes, feature_dim = len(hp.label_names), hp.feature_dim
        if hp.encoder is not None:
            self.encoder = ImageEncoder(hp.encoder, hp.pretrained, hp.trainable, hp.weights_path)
            config = self.encoder.data_config()
            self.register_buffer("mean", torch.tensor(config["mean"]).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(config["std"]).view(1, 3, 1, 1), persistent=False)
            in_size = self.encoder.out_channels
        else:
            if feature_dim is None:
                raise ValueError("FrameClassifier with encoder: null needs feature_dim (or a datamodule with features)")
            self.encoder = None
            in_size = feature_dim
        self.drop = nn.Dropout(hp.dropout)
        if hp.recurrent:
            self.rnn = Recurrent(in_size, hp.hidden_size, hp.cell, hp.num_layers, hp.bidirectional, hp.dropout, hp.backend)
            self.mlp = None
            out_size = self.rnn.output_size
        else:
            self.rnn = None
            self.mlp = nn.Sequential(nn.Linear(in_size, hp.hidden_size), nn.ReLU())
            out_size = hp.hidden_size
        self.head = nn.Linear(out_size, num_classes)
        metric = lambda: MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE)  # noqa: E731
        self.metrics = nn.ModuleDict(
            {
                split: nn.ModuleDict({name: metric() for name in ("frame_acc", "clip_acc", "memory_acc", "direct_acc")})
                for split in ("val", "test")
            }
        )

    # ---- the model ---------------------------------------------------------------------------
    def frame_features(self, inputs: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """``(B, T, 3, H, W)`` frames (uint8 0-255, or float 0-1) or ``(B, T, F)`` features ->
        ``(B, T, F)`` features, zero at padded steps. The backbone sees only real frames."""
        B, T = inputs.shape[:2]
        mask = lengths_to_mask(lengths, T, B, inputs.device)
        if inputs.dim() == 3:
            return inputs.float() * mask.unsqueeze(-1)
        self.check_built()
        if self.encoder is None:
            raise ValueError("this FrameClassifier reads precomputed features (encoder: null), got frames")
        vector = self.frame_vectors(inputs[mask])
        out = vector.new_zeros(B, T, vector.shape[-1])
        out[mask] = vector
        return out

    def frame_vectors(self, frames: Tensor) -> Tensor:
        """The backbone on frames ``(N, 3, H, W)`` (uint8 0-255, or float 0-1), normalised as in
        training: ``(N, F)``."""
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        return self.encoder((x - self.mean) / self.std)[1]

    def forward(self, inputs: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits: ``(B, T, classes)`` for ``target: frame`` (meaningless at padded steps),
        ``(B, classes)`` for ``target: clip``."""
        B, T = inputs.shape[:2]
        mask = lengths_to_mask(lengths, T, B, inputs.device)
        features = self.drop(self.frame_features(inputs, lengths))
        if self.rnn is not None:
            out = self.rnn(features, lengths)
            hidden = out.output
            if self.hparams.target == "clip":  # the top layer's final state, each direction
                return self.head(self.drop(top_state(out.state, self.rnn.num_directions)))
        else:
            hidden = self.mlp(features) * mask.unsqueeze(-1)
            if self.hparams.target == "clip":
                pooled = hidden.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
                return self.head(self.drop(pooled))
        return self.head(self.drop(hidden))

    @staticmethod
    def clip_scores(logits: Tensor, lengths: Optional[Tensor]) -> Tensor:
        """Per-frame logits ``(B, T, C)`` -> clip scores ``(B, C)``: mean log-probability over real frames."""
        B, T = logits.shape[:2]
        mask = lengths_to_mask(lengths, T, B, logits.device).unsqueeze(-1)
        return (F.log_softmax(logits.float(), -1) * mask).sum(1) / mask.sum(1).clamp(min=1)

    # ---- training and evaluation -------------------------------------------------------------
    @staticmethod
    def _inputs(batch: Dict[str, Any]) -> Tensor:
        return batch["frames"] if "frames" in batch else batch["features"]

    def _loss(self, logits: Tensor, batch: Dict[str, Any]) -> Tensor:
        if self.hparams.target == "clip":
            targets = batch["clip_labels"]
            flat_logits = logits
        else:
            targets = batch["labels"].flatten()
            flat_logits = logits.flatten(0, 1)
        labelled = int((targets != IGNORE).sum())
        if labelled == 0:
            loss = flat_logits.sum() * 0.0  # nothing labelled in this batch
        else:
            loss = F.cross_entropy(flat_logits.float(), targets, ignore_index=IGNORE)
        return self.global_mean(loss, labelled)  # every rank joins global_mean's all-reduce under DDP

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Tensor:
        logits = self(self._inputs(batch), batch.get("lengths"))
        loss = self._loss(logits, batch)
        size = len(batch["clip_labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        if self.hparams.target == "frame":
            labels = batch["labels"]
            real = labels != IGNORE
            if bool(real.any()):
                acc = (logits.argmax(-1)[real] == labels[real]).float().mean()
                self.log("train/frame_acc", acc, prog_bar=True, batch_size=size)
        return loss

    def _evaluate(self, batch: Dict[str, Any], split: str) -> None:
        lengths = batch.get("lengths")
        logits = self(self._inputs(batch), lengths)
        loss = self._loss(logits, batch)
        metrics = self.metrics[split]
        size = len(batch["clip_labels"])
        self.log(f"{split}/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        if self.hparams.target == "clip":
            metrics["clip_acc"].update(logits, batch["clip_labels"])
            self.log(f"{split}/clip_acc", metrics["clip_acc"], prog_bar=True)
            return
        labels = batch["labels"]
        preds = logits.argmax(-1)
        metrics["frame_acc"].update(preds.flatten(), labels.flatten())
        self.log(f"{split}/frame_acc", metrics["frame_acc"], prog_bar=True)
        if bool((batch["clip_labels"] != IGNORE).any()):
            metrics["clip_acc"].update(self.clip_scores(logits, lengths), batch["clip_labels"])
            self.log(f"{split}/clip_acc", metrics["clip_acc"], prog_bar=True)
        if "needs_memory" in batch:
            memory = batch["needs_memory"]
            real = labels != IGNORE
            if bool(memory.any()):
                metrics["memory_acc"].update(preds[memory], labels[memory])
                self.log(f"{split}/memory_acc", metrics["memory_acc"], prog_bar=True)
            direct = real & ~memory
            if bool(direct.any()):
                metrics["direct_acc"].update(preds[direct], labels[direct])
                self.log(f"{split}/direct_acc", metrics["direct_acc"])

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int = 0) -> List[Dict[str, Any]]:
        """Per clip: ``video`` (its id, or its position), ``labels`` (a name per real frame) and
        ``probs`` ``(T, C)``; with ``target: clip`` one ``label`` and ``probs`` ``(C,)``."""
        lengths = batch.get("lengths")
        probs = self(self._inputs(batch), lengths).float().softmax(-1).cpu()
        results = []
        for b in range(probs.shape[0]):
            video = batch["video"][b] if "video" in batch else b
            clip = self.hparams.target == "clip"
            results.append(
                self._result(video, probs[b] if clip else probs[b, : int(lengths[b]) if lengths is not None else None])
            )
        return results

    def _result(self, video: Any, probs: Tensor) -> Dict[str, Any]:
        """One clip's dict: ``probs`` ``(C,)`` (target: clip) or ``(T, C)`` (a label per frame)."""
        names = self.hparams.label_names
        if self.hparams.target == "clip":
            return {"video": video, "label": names[int(probs.argmax())], "probs": probs}
        return {"video": video, "labels": [names[i] for i in probs.argmax(-1).tolist()], "probs": probs}

    # ---- inference on raw video ----------------------------------------------------------------
    def _frames(self, clip: Any) -> Tensor:
        """A video file, a folder of frames or a uint8 ``(T, H, W, 3)`` array -> ``(T, 3, S, S)`` uint8."""
        size = self.hparams.frame_size
        if isinstance(clip, (str, Path)):
            array = read_clip(clip, size)
        else:
            array = np.asarray(clip)
            if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
                raise InputError(f"a clip array must be uint8 (T, H, W, 3), got {array.dtype} {array.shape}")
        frames = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
        if size is not None and frames.shape[-2:] != (size, size):
            frames = (
                F.interpolate(frames.float(), size=(size, size), mode="bilinear", antialias=True)
                .round()
                .clamp(0, 255)
                .to(torch.uint8)
            )
        return frames

    def predict(self, videos: Any, batch_size: int = 8) -> List[Dict[str, Any]]:
        """Label every frame of each clip (a video file, a frame folder or a uint8 ``(T, H, W, 3)``
        array): the dicts of :meth:`predict_step`, ``video`` being the path or the position."""
        if self.encoder is None:
            raise InputError("this FrameClassifier reads precomputed features (encoder: null): it cannot label raw video")
        if isinstance(videos, (str, Path)) or (isinstance(videos, np.ndarray) and videos.ndim == 4):
            videos = [videos]
        results: List[Dict[str, Any]] = []
        with evaluating(self):
            for start in range(0, len(videos), batch_size):
                chunk = list(videos[start : start + batch_size])
                batch = pad_clips(
                    [
                        {"frames": self._frames(video), "video": str(video) if isinstance(video, (str, Path)) else start + i}
                        for i, video in enumerate(chunk)
                    ]
                )
                batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
                results.extend(self.predict_step(batch))
        return results

    # ---- online: frames as they arrive ----------------------------------------------------------
    def stream(self) -> FrameStream:
        """Label frames as they arrive (:class:`FrameStream`): ``stream.step(frames)``
        ``(batch, 3, H, W)`` -> class probabilities. Unidirectional models only."""
        self.check_built()
        return FrameStream(self)

    def predict_online(self, videos: Any) -> List[Dict[str, Any]]:
        """:meth:`predict`'s dicts computed frame by frame through :meth:`stream` (one clip at a time,
        batch 1): what a live camera would get, equal to :meth:`predict` for a unidirectional model."""
        if self.encoder is None:
            raise InputError("this FrameClassifier reads precomputed features (encoder: null): it cannot label raw video")
        if isinstance(videos, (str, Path)) or (isinstance(videos, np.ndarray) and videos.ndim == 4):
            videos = [videos]
        results = []
        with evaluating(self):
            stream = self.stream()
            for i, video in enumerate(videos):
                stream.reset()
                probs = torch.cat([stream.step(frame[None]) for frame in self._frames(video)]).cpu()
                name = str(video) if isinstance(video, (str, Path)) else i
                results.append(self._result(name, probs[-1] if self.hparams.target == "clip" else probs))
        return results

    # ---- a feature cache for the recurrent part --------------------------------------------------
    @torch.no_grad()
    def save_features(
        self, datasets: Any, out_dir: str | Path, label_names: Optional[Sequence[str]] = None, batch_size: int = 16
    ) -> Path:
        """Run the backbone over every clip of ``datasets`` (a dataset, or ``{split: dataset}``, with
        items holding ``frames`` and ``video``) and write ``out_dir/<video>.npy`` (float32
        ``(frames, dim)``) plus ``out_dir/labels.csv`` (``video,frame,label[,needs_memory][,split]``,
        ``frame`` counting the dataset's frames from 0): the ``features`` layout of
        :class:`datamodules.video_frames.VideoFramesDataModule`. Give video datasets stride 1 and
        sampling ``start`` so that the features cover the whole video. ``label_names``: the names of
        the datasets' label ids (default: the model's)."""
        if self.encoder is None:
            raise ValueError("this FrameClassifier reads features already (encoder: null)")
        names = list(label_names or self.hparams.label_names)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        named = datasets if isinstance(datasets, dict) else {None: datasets}
        rows, has_memory = [], False
        with evaluating(self):
            for split, dataset in named.items():
                for start in range(0, len(dataset), batch_size):
                    batch = pad_clips([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
                    lengths = batch["lengths"]
                    features = self.frame_features(batch["frames"].to(self.device), lengths.to(self.device)).cpu()
                    has_memory |= "needs_memory" in batch
                    for b, video in enumerate(batch["video"]):
                        n = int(lengths[b])
                        path = out_dir / f"{video}.npy"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        np.save(path, features[b, :n].numpy().astype(np.float32), allow_pickle=False)
                        memory = batch["needs_memory"][b, :n].tolist() if "needs_memory" in batch else [False] * n
                        for t, label in enumerate(batch["labels"][b, :n].tolist()):
                            if label != IGNORE:
                                rows.append((video, t, names[label], int(memory[t]), split))
        header = ["video", "frame", "label"] + (["needs_memory"] if has_memory else []) + (["split"] if None not in named else [])
        with open(out_dir / "labels.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for video, t, label, memory, split in rows:
                writer.writerow([video, t, label] + ([memory] if has_memory else []) + ([split] if split is not None else []))
        return out_dir

    # ---- export (zoo.export) ------------------------------------------------------------------------
    def export_graphs(self, batch: int = 2, length: int = 5) -> List[Graph]:
        """``frame_step``: ``frames (B, 3, H, W) uint8 [, h, c] -> probs (B, C) [, h_next, c_next]``."""
        if self.encoder is None:
            raise ExportError("this FrameClassifier reads precomputed features (encoder: null): export a model with a backbone")
        try:
            check_streamable(self.rnn, "frame classifier")
        except ValueError as error:
            raise ExportError(f"{error}; there is no step graph to export") from None
        if self.rnn is None and self.hparams.target == "clip":
            raise ExportError(
                "recurrent: false with target: clip averages every frame of the clip: it has no step graph "
                "(export the recurrent model, or the per-frame baseline with target: frame)"
            )
        gen = torch.Generator().manual_seed(0)
        lstm = self.hparams.cell == "lstm"
        size = self.hparams.frame_size or 32
        inputs: Dict[str, Tensor] = {"frames": torch.randint(0, 256, (batch, 3, size, size), generator=gen, dtype=torch.uint8)}
        names = ["probs"]
        if self.rnn is not None:
            inputs.update(state_inputs(self.rnn.num_layers, batch, self.rnn.hidden_size, lstm, gen))
            names += next_names(["h", "c"] if lstm else ["h"])
        return [Graph("frame_step", FrameStep(self), inputs, names, batch_axes(inputs, {"h": 1, "c": 1}))]


class FrameStep(nn.Module):
    """One frame as a graph: the backbone, one recurrent step and the head."""

    def __init__(self, model: FrameClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor, h: Optional[Tensor] = None, c: Optional[Tensor] = None):
        model = self.model
        features = model.frame_vectors(frames)
        if model.rnn is None:
            return (torch.softmax(model.head(model.mlp(features)).float(), -1),)
        out = model.rnn(features[:, None], state=state_args(h, c))
        return (torch.softmax(model.head(out.output[:, 0]).float(), -1), *state_outs(out.state))


class FrameStream(Stream):
    """Frames labelled as they arrive (``model``: a unidirectional ``FrameClassifier``): per frame the
    backbone, one recurrent step and the head. With ``target: clip`` each step gives the clip label of
    the frames so far."""

    def __init__(self, model: nn.Module) -> None:
        check_streamable(model.rnn, "frame classifier")
        super().__init__(model, model.rnn)
        self.total: Optional[Tensor] = None  # the baseline's running sum (recurrent: false, target: clip)

    def reset(self, state: Optional[State] = None) -> None:
        super().reset(state)
        self.total = None

    @torch.no_grad()
    def step(self, frames: Tensor) -> Tensor:
        """One frame per row, ``(batch, 3, H, W)`` (uint8 or float 0-1) or features ``(batch, F)`` ->
        class probabilities ``(batch, classes)``."""
        model = self.model
        features = model.frame_features(frames.to(model.head.weight.device)[:, None])[:, 0]
        if self.rnn is not None:
            hidden = self.advance(features)
        else:
            hidden = model.mlp(features)
            self.steps += 1
            if model.hparams.target == "clip":
                self.total = hidden if self.total is None else self.total + hidden
                hidden = self.total / self.steps
        return torch.softmax(model.head(hidden).float(), -1)
