"""Learning-rate schedules shared by the task modules."""

from __future__ import annotations

import math
from typing import Optional

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: Optional[int], min_ratio: float = 0.1) -> LambdaLR:
    """Linear warm-up to the base rate over ``warmup_steps``, then a cosine down to ``min_ratio`` of it
    at ``total_steps``. With ``total_steps=None`` (a run bounded only by time) the rate stays flat."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if total_steps is None or total_steps <= warmup_steps:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
