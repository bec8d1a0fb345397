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
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from zoo.encoders import ImageEncoder
from zoo.recurrent import Recurrent
from zoo.tasks.base import TaskModule

__all__ = ["FrameClassifier", "FrameCNN", "save_features", "save_features_command", "step_mask"]

IGNORE = -100
TARGETS = ("frame", "clip")


# ---- a small CNN for small frames, registered with timm ------------------------------------------
class FrameCNN(nn.Module):
    """A few ``conv3x3 (stride 2) - BatchNorm - ReLU`` blocks: 32 x 32 frames -> a 4 x 4 grid of
    ``widths[-1]`` channels. Small enough to train end to end on a CPU; registered with timm as
    ``zoo_frame_cnn`` so :class:`~zoo.encoders.ImageEncoder` builds it like any timm backbone."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64), in_chans: int = 3) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        channels = in_chans
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        # what timm.data.resolve_data_config reads: inputs in [0, 1] are centred on 0.5
        self.pretrained_cfg = {"input_size": (in_chans, 32, 32), "mean": (0.5,) * 3, "std": (0.25,) * 3,
                               "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"}

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).mean((2, 3))


def zoo_frame_cnn(pretrained: bool = False, **kwargs: Any) -> FrameCNN:
    if pretrained:
        raise ValueError("zoo_frame_cnn has no pretrained weights: it is trained with the frame classifier")
    return FrameCNN(widths=kwargs.get("widths", (16, 32, 64)), in_chans=kwargs.get("in_chans", 3))


def _register_with_timm() -> None:
    import timm
    from timm.models import register_model

    if "zoo_frame_cnn" not in timm.list_models("zoo_*"):
        register_model(zoo_frame_cnn)


_register_with_timm()


def step_mask(lengths: Optional[Tensor], batch: int, time: int, device=None) -> Tensor:
    """``(batch, time)`` True at real steps."""
    if lengths is None:
        return torch.ones(batch, time, dtype=torch.bool, device=device)
    return torch.arange(time, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)


class FrameClassifier(TaskModule):
    def __init__(
        self,
        num_classes: Optional[int] = None,
        classes: Optional[List[str]] = None,
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
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.1,
        grad_clip: Optional[float] = 1.0,
    ) -> None:
        """
        Args:
            num_classes, classes: the label set; ``None`` = take it from the datamodule at setup
                (``classes`` are saved with the checkpoint, so predictions can be named).
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
            lr, weight_decay, warmup_steps, min_lr_ratio: AdamW with warm-up and cosine decay.
            grad_clip: clip the global gradient norm (``None`` = no clipping).
        """
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.save_hyperparameters()
        self._built = False
        if num_classes is not None and (encoder is not None or feature_dim is not None):
            self._build(num_classes, feature_dim)

    # ---- construction ------------------------------------------------------------------------
    def _build(self, num_classes: int, feature_dim: Optional[int]) -> None:
        hp = self.hparams
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
        self.metrics = nn.ModuleDict({
            split: nn.ModuleDict({name: metric() for name in ("frame_acc", "clip_acc", "memory_acc", "direct_acc")})
            for split in ("val", "test")
        })
        self.hparams.num_classes, self.hparams.feature_dim = num_classes, feature_dim
        self._built = True

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        classes = getattr(datamodule, "classes", None)
        if classes is not None and self.hparams.classes is None:
            self.hparams.classes = list(classes)
        if self._built:
            if classes is not None and len(classes) != self.hparams.num_classes:
                raise ValueError(f"the model has {self.hparams.num_classes} classes, the data {len(classes)}")
            return
        num_classes = self.hparams.num_classes or (len(classes) if classes is not None else None)
        if num_classes is None:
            raise ValueError("FrameClassifier needs num_classes: pass it, or train with a datamodule that has classes")
        feature_dim = self.hparams.feature_dim or getattr(datamodule, "feature_dim", None)
        self._build(num_classes, feature_dim)

    # ---- the model ---------------------------------------------------------------------------
    def frame_features(self, inputs: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """``(B, T, 3, H, W)`` frames (uint8 0-255, or float 0-1) or ``(B, T, F)`` features ->
        ``(B, T, F)`` features, zero at padded steps. The backbone sees only real frames."""
        B, T = inputs.shape[:2]
        mask = step_mask(lengths, B, T, inputs.device)
        if inputs.dim() == 3:
            return inputs.float() * mask.unsqueeze(-1)
        if self.encoder is None:
            raise ValueError("this FrameClassifier reads precomputed features (encoder: null), got frames")
        x = inputs[mask]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        _, vector = self.encoder((x - self.mean) / self.std)
        out = vector.new_zeros(B, T, vector.shape[-1])
        out[mask] = vector
        return out

    def forward(self, inputs: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits: ``(B, T, classes)`` for ``target: frame`` (meaningless at padded steps),
        ``(B, classes)`` for ``target: clip``."""
        B, T = inputs.shape[:2]
        mask = step_mask(lengths, B, T, inputs.device)
        features = self.drop(self.frame_features(inputs, lengths))
        if self.rnn is not None:
            out = self.rnn(features, lengths)
            hidden = out.output
            if self.hparams.target == "clip":
                state = out.state[0] if isinstance(out.state, tuple) else out.state
                top = state[-self.rnn.num_directions :]  # the last layer's final state, each direction
                return self.head(self.drop(top.permute(1, 0, 2).reshape(B, -1)))
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
        mask = step_mask(lengths, B, T, logits.device).unsqueeze(-1)
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
        if not bool((targets != IGNORE).any()):
            return flat_logits.sum() * 0.0  # nothing labelled in this batch
        return F.cross_entropy(flat_logits.float(), targets, ignore_index=IGNORE)

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

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> List[Dict[str, Any]]:
        """Per clip: ``video``, ``probs`` (``(T, C)`` per frame, or ``(C,)`` per clip) and the
        predicted ``labels`` (class names when known)."""
        lengths = batch.get("lengths")
        probs = self(self._inputs(batch), lengths).float().softmax(-1)
        names = self.hparams.classes
        out = []
        for b in range(probs.shape[0]):
            p = probs[b] if self.hparams.target == "clip" else probs[b, : int(lengths[b]) if lengths is not None else None]
            index = p.argmax(-1)
            labels = [names[i] for i in index.flatten().tolist()] if names else index.tolist()
            video = batch["video"][b] if "video" in batch else b
            out.append({"video": video, "probs": p.cpu(), "labels": labels})
        return out


@torch.no_grad()
def save_features(
    model: FrameClassifier,
    datasets: Any,
    out_dir: str | Path,
    classes: Optional[Sequence[str]] = None,
    batch_size: int = 16,
) -> Path:
    """Run ``model``'s backbone over every clip of ``datasets`` (a dataset, or ``{split: dataset}``,
    with items holding ``frames`` and ``video``) and write ``out_dir/<video>.npy`` (float32
    ``(frames, dim)``) plus ``out_dir/labels.csv`` (``video,frame,label[,needs_memory][,split]``,
    ``frame`` counting the dataset's frames from 0): the ``features`` layout of
    :class:`datamodules.video_frames.VideoFramesDataModule`. Give video datasets stride 1 and
    sampling ``start`` so that the features cover the whole video."""
    from datamodules.video_frames import pad_clips

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    named = datasets if isinstance(datasets, dict) else {None: datasets}
    model.eval()
    rows, has_memory = [], False
    for split, dataset in named.items():
        for start in range(0, len(dataset), batch_size):
            batch = pad_clips([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
            lengths = batch["lengths"]
            features = model.frame_features(batch["frames"].to(model.device), lengths.to(model.device)).cpu()
            has_memory |= "needs_memory" in batch
            for b, video in enumerate(batch["video"]):
                n = int(lengths[b])
                path = out_dir / f"{video}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, features[b, :n].numpy().astype(np.float32), allow_pickle=False)
                memory = batch["needs_memory"][b, :n].tolist() if "needs_memory" in batch else [False] * n
                for t, label in enumerate(batch["labels"][b, :n].tolist()):
                    if label != IGNORE:
                        rows.append((video, t, classes[label] if classes else label, int(memory[t]), split))
    header = ["video", "frame", "label"] + (["needs_memory"] if has_memory else []) + (["split"] if None not in named else [])
    with open(out_dir / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for video, t, label, memory, split in rows:
            writer.writerow([video, t, label] + ([memory] if has_memory else []) + ([split] if split is not None else []))
    return out_dir


def save_features_command(argv: Optional[List[str]] = None) -> int:
    """``python -m zoo.tasks.frame_classifier CKPT OUT``: cache a trained model's per-frame features."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m zoo.tasks.frame_classifier",
        description="Write the per-frame features of a trained FrameClassifier's backbone to OUT "
        "(OUT/<video>.npy + OUT/labels.csv with a split column): train on them with "
        "VideoFramesDataModule(root=OUT, labels=OUT/labels.csv) and FrameClassifier(encoder: null).",
    )
    parser.add_argument("ckpt", help="a checkpoint written by `zoo fit` with a FrameClassifier")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--shapes", nargs="*", metavar="KEY=VALUE", default=None,
                        help="MovingShapes clips (MovingShapesDataModule arguments, e.g. memory=24 num_train=2000)")
    parser.add_argument("--root", help="a video root for VideoFramesDataModule (frames, videos or ucf101)")
    parser.add_argument("--labels", help="its labels CSV")
    parser.add_argument("--size", type=int, default=112, help="frame size for --root (default 112)")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)
    from zoo.tasks import frame_classifier  # not __main__'s copy of this module, when run with -m
    from zoo.tasks.base import load_task

    model = load_task(args.ckpt, frame_classifier.FrameClassifier)
    if model.encoder is None:
        parser.error(f"{args.ckpt} reads features already (encoder: null)")
    if (args.shapes is None) == (args.root is None):
        parser.error("give exactly one of --shapes and --root")
    if args.shapes is not None:
        from datamodules.moving_shapes import MovingShapesDataModule

        options = {}
        for item in args.shapes:
            key, _, value = item.partition("=")
            options[key] = int(value)
        dm = MovingShapesDataModule(**options)
    else:
        from datamodules.video_frames import VideoFramesDataModule

        dm = VideoFramesDataModule(args.root, labels=args.labels, num_frames=10**9, size=args.size,
                                   train_sampling="start", eval_sampling="start")
    dm.setup()
    splits = {"train": dm.datasets["train"], "val": dm.datasets["val"]}
    out = save_features(model, splits, args.out, classes=dm.classes, batch_size=args.batch)
    print(f"wrote features of {sum(len(d) for d in splits.values())} clips to {out}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(save_features_command())
