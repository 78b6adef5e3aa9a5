"""Learning-rate schedules as step-wise `LambdaLR`s: linear warm-up, then cosine or linear decay."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return max(0, min(total_steps, round(total_steps * warmup_ratio)))


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_ratio: float = 0.05, min_ratio: float = 0.0
) -> LambdaLR:
    """lr(t) = lr·t/w for t < w, then lr·(m + (1−m)·½(1 + cos(π(t−w)/(T−w))))."""
    warmup = _warmup_steps(total_steps, warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_linear(optimizer: Optimizer, total_steps: int, warmup_ratio: float = 0.05) -> LambdaLR:
    """lr(t) = lr·t/w for t < w, then lr·(T−t)/(T−w)."""
    warmup = _warmup_steps(total_steps, warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)
