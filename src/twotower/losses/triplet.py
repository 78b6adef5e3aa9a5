"""Margin triplet loss over L2-normalised q (B, d), p (B, d), n (B, k, d)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TripletLoss(nn.Module):
    """L = mean_{i,j} max(0, margin − cos(q_i, p_i) + cos(q_i, n_ij)).

    Inputs: L2-normalised q (B, d), p (B, d), n (B, k, d); `teacher` is accepted and ignored."""

    needs_teacher = False

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        self.margin = margin

    def forward(
        self, q: torch.Tensor, p: torch.Tensor, n: torch.Tensor, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        pos = (q * p).sum(-1, keepdim=True)
        neg = torch.einsum("bd,bkd->bk", q, n)
        return F.relu(self.margin - pos + neg).mean()
