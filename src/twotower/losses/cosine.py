"""Cosine-embedding loss over L2-normalised q (B, d), p (B, d), n (B, k, d)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineLoss(nn.Module):
    """Cosine-embedding loss: L = mean(1 − cos(q, p)) + mean(max(0, cos(q, n) − margin)), as torch's
    `CosineEmbeddingLoss` with targets +1 for positives and −1 for negatives (one term per pair).

    Inputs: L2-normalised q (B, d), p (B, d), n (B, k, d); `teacher` is accepted and ignored."""

    needs_teacher = False

    def __init__(self, margin: float = 0.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(
        self, q: torch.Tensor, p: torch.Tensor, n: torch.Tensor, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        pos = 1 - (q * p).sum(-1)
        neg = F.relu(torch.einsum("bd,bkd->bk", q, n) - self.margin)
        return torch.cat([pos, neg.flatten()]).mean()
