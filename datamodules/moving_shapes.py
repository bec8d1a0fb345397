"""MovingShapes: generated video clips whose per-frame label needs memory. The offline default of
the frame classifier.

Every clip shows a coloured disc (the *target*) moving sideways into a grey wall, behind which it
stays hidden until the clip ends. The label of every frame is the target's colour:

    frame:   0   1   2 | 3   4   5  ...  M+2      visible = 3, memory = M
    target:  seen      | hidden behind the wall
    label:   red red red red red red ...  red
                        └─ needs memory: the frame itself shows nothing of the target

While the target is visible, one frame is enough; once it is hidden, only a model that remembers
what it saw can be right — a per-frame classifier is at chance (``1 / num_colors``) there. Small
squares (*distractors*) of random palette colours drift over everything, so "the last colour I saw"
is not the answer either. ``memory`` sets how many frames the target stays hidden: the length of
memory the label needs. Clips have ``visible`` (random in ``[min_visible, max_visible]``) +
``memory`` frames, so a batch mixes lengths (padding is exercised too).

Every clip is a pure function of ``(seed, split, index)``; the target's colour comes from its own
random stream, so the same clip with another colour differs only where the target is visible
(``tests/test_video_frames.py`` checks that hidden frames carry no trace of the label). Each item
carries ``needs_memory`` (frames where no target pixel is visible), and the frame classifier
reports its accuracy on those frames as ``val/memory_acc``.

Batches are :func:`datamodules.loaders.pad_clips` of the clips; ``video`` (``split/index``) and
``index`` identify each clip in a prediction.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .loaders import SplitLoaders, pad_clips

#: name -> RGB. The first ``num_colors`` are used.
PALETTE: Dict[str, Tuple[int, int, int]] = {
    "red": (235, 45, 45),
    "green": (40, 205, 70),
    "blue": (55, 95, 245),
    "yellow": (240, 225, 40),
    "magenta": (225, 60, 225),
    "cyan": (50, 220, 225),
}
SPLITS = {"train": 0, "val": 1, "test": 2}


def render_clip(
    seed: int,
    split: str,
    index: int,
    size: int = 32,
    memory: int = 12,
    num_colors: int = 4,
    distractors: int = 2,
    min_visible: int = 2,
    max_visible: int = 4,
    color: Optional[int] = None,
) -> Dict[str, Tensor]:
    """One clip: ``frames`` uint8 ``(T, 3, size, size)``, ``labels`` ``(T,)``, ``clip_label`` ``()``,
    ``needs_memory`` bool ``(T,)``, with ``T = visible + memory``. ``color`` overrides the target's
    colour (everything else stays the same)."""
    if not 2 <= num_colors <= len(PALETTE):
        raise ValueError(f"num_colors must be in [2, {len(PALETTE)}], got {num_colors}")
    if not 1 <= min_visible <= max_visible:
        raise ValueError(f"need 1 <= min_visible <= max_visible, got {min_visible}, {max_visible}")
    if memory < 0:
        raise ValueError(f"memory must be >= 0, got {memory}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    key = [int(seed), SPLITS[split], int(index)]
    rng = np.random.default_rng(key)  # geometry, noise, distractors
    colors = np.array(list(PALETTE.values())[:num_colors], dtype=np.float32)
    target = int(np.random.default_rng(key + [1]).integers(num_colors)) if color is None else int(color)

    visible = int(rng.integers(min_visible, max_visible + 1))
    T = visible + memory
    radius = max(2, size // 10)
    wall_half = radius + 2  # the wall hides the whole disc when the centres are within 2 px
    wall_x = rng.uniform(0.4 * size, 0.6 * size)
    y0 = rng.uniform(radius + 1, size - radius - 2)
    from_left = bool(rng.integers(2))
    # The disc reaches the wall's centre at frame `visible`, starting inside the frame.
    room = (wall_x - radius - 1) if from_left else (size - 2 - radius - wall_x)
    speed = min(rng.uniform(2.0, 4.0), room / visible)
    t = np.arange(T, dtype=np.float32)
    travel = np.minimum(t, visible) * speed - visible * speed  # <= 0; 0 once behind the wall
    xs = wall_x + (travel if from_left else -travel)
    ys = y0 + rng.uniform(-0.5, 0.5) * np.minimum(t, visible)  # a slight drift

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = np.empty((T, size, size, 3), dtype=np.float32)
    background = rng.normal(30, 8, size=(T, size, size, 1)).astype(np.float32)
    frames[:] = background
    disc = (xx[None] - xs[:, None, None]) ** 2 + (yy[None] - ys[:, None, None]) ** 2 <= radius**2
    frames[disc] = colors[target]
    wall = np.abs(xx - wall_x) <= wall_half
    frames[:, wall] = 128 + rng.normal(0, 6, size=(T, int(wall.sum()), 1)).astype(np.float32)
    seen = disc & ~wall[None]

    # Distractors: 3x3 squares of random palette colours, bouncing around, drawn on top.
    for _ in range(distractors):
        c = colors[int(rng.integers(num_colors))]
        p = rng.uniform(0, size - 3, size=2)
        v = rng.uniform(-2.5, 2.5, size=2)
        for step in range(T):
            x, y = int(round(p[0])), int(round(p[1]))
            frames[step, y : y + 3, x : x + 3] = c
            seen[step, y : y + 3, x : x + 3] = False
            p = p + v
            for axis in range(2):  # bounce off the borders
                if not 0 <= p[axis] <= size - 3:
                    v[axis] = -v[axis]
                    p[axis] = np.clip(p[axis], 0, size - 3)

    frames = np.clip(frames, 0, 255).astype(np.uint8)
    needs_memory = ~seen.reshape(T, -1).any(1)
    return {
        "frames": torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))),
        "labels": torch.full((T,), target, dtype=torch.long),
        "clip_label": torch.tensor(target, dtype=torch.long),
        "needs_memory": torch.from_numpy(needs_memory),
    }


class MovingShapes(Dataset):
    """``num_clips`` clips of one split; item ``i`` is :func:`render_clip` of ``(seed, split, i)``."""

    def __init__(self, num_clips: int, split: str = "train", seed: int = 0, **clip_args) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        self.num_clips, self.split, self.seed, self.clip_args = num_clips, split, seed, clip_args

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> Dict[str, Tensor]:
        if not 0 <= index < self.num_clips:
            raise IndexError(index)
        item = render_clip(self.seed, self.split, index, **self.clip_args)
        item["video"] = f"{self.split}/{index}"
        item["index"] = index
        return item


class MovingShapesDataModule(SplitLoaders, L.LightningDataModule):
    """MovingShapes clips in padded batches (train shuffled). After ``setup`` (or at once: the
    classes are known from the arguments) it exposes ``label_names`` (the target colours, index =
    label) and ``feature_dim`` (``None``: the clips are frames) for the model."""

    collate_fn = staticmethod(pad_clips)

    def __init__(
        self,
        memory: int = 12,
        size: int = 32,
        num_colors: int = 4,
        distractors: int = 2,
        min_visible: int = 2,
        max_visible: int = 4,
        num_train: int = 4000,
        num_val: int = 500,
        num_test: int = 500,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        """
        Args:
            memory: frames the target stays hidden: how far back the label of the last frame lies.
            size: frame height and width in pixels.
            num_colors: classes (target colours, at most 6); chance is ``1 / num_colors``.
            distractors: drifting squares of random colours drawn over everything.
            min_visible, max_visible: the target is visible for a random number of frames in this
                range before it is hidden; clips have ``visible + memory`` frames.
            num_train, num_val, num_test: clips per split (generated on the fly, deterministic).
            seed: the whole data set is a function of it.
        """
        super().__init__()
        self.save_hyperparameters()
        self.label_names: List[str] = list(PALETTE)[:num_colors]
        self.feature_dim: Optional[int] = None
        self.datasets: Dict[str, MovingShapes] = {}

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def _clip_args(self) -> Dict[str, int]:
        hp = self.hparams
        return {k: hp[k] for k in ("size", "memory", "num_colors", "distractors", "min_visible", "max_visible")}

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        self.datasets = {
            split: MovingShapes(count, split, hp.seed, **self._clip_args())
            for split, count in (("train", hp.num_train), ("val", hp.num_val), ("test", hp.num_test))
        }
