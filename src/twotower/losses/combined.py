"""A weighted sum of named losses over L2-normalised q (B, d), p (B, d), n (B, k, d) (and teacher scores)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class CombinedLoss(nn.Module):
    """L = Σ_name w_name · L_name(q, p, n, teacher), e.g. InfoNCE + listwise KL distillation:

        CombinedLoss(losses={"contrastive": ContrastiveLoss(), "kl": DistillKLLoss()},
                     weights={"contrastive": 1.0, "kl": 1.0})

    or, from Hydra, `twotower/conf/loss/combined.yaml` whose `losses` entries each carry their own `_target_`.

    Inputs: L2-normalised q (B, d), p (B, d), n (B, k, d) and `teacher` (B, 1 + k) or None, all passed to
    every part. It raises ValueError when a part needs teacher scores and `teacher` is None.

    After each call, `last_parts` maps each name to that part's unweighted value (a float, for logging:
    `for name, v in loss.last_parts.items(): self.log(f"train/loss_{name}", v)`). Reading them back costs one
    host sync per part per step. `weights` defaults to 1.0 for every loss it does not name; a weight for a name
    not in `losses` is an error.
    """

    name = "combined"

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        losses, weights = dict(losses), dict(weights or {})
        if not losses:
            raise ValueError("CombinedLoss needs at least one loss")
        unknown = sorted(set(weights) - set(losses))
        if unknown:
            raise ValueError(
                f"weights name losses that CombinedLoss was not given: {unknown} (losses: {sorted(losses)})"
            )
        self.losses = nn.ModuleDict(losses)
        self.weights = {name: float(weights.get(name, 1.0)) for name in losses}
        self.last_parts: dict[str, float] = {}

    @property
    def needs_teacher(self) -> bool:
        return any(getattr(loss, "needs_teacher", False) for loss in self.losses.values())

    def forward(
        self,
        q: torch.Tensor,
        p: torch.Tensor,
        n: torch.Tensor,
        teacher: torch.Tensor | None = None,
        teacher_vectors: dict | None = None,
    ) -> torch.Tensor:
        if teacher is None:
            needy = [name for name, loss in self.losses.items() if getattr(loss, "needs_teacher", False)]
            if needy:
                raise ValueError(
                    f"loss={self.name} (its part {', '.join(needy)}) needs teacher scores: "
                    "set data.prepare.teacher (minilm, a model folder or a .pt)"
                )
        # Only the parts that regress onto the teacher's vectors (embedding_mse) take them.
        parts = {
            name: loss(q, p, n, teacher=teacher, teacher_vectors=teacher_vectors)
            if getattr(loss, "needs_teacher_vectors", False)
            else loss(q, p, n, teacher=teacher)
            for name, loss in self.losses.items()
        }
        self.last_parts = {name: float(value.detach()) for name, value in parts.items()}
        return sum(self.weights[name] * value for name, value in parts.items())
