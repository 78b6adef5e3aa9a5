"""InfoNCE with in-batch and hard negatives over L2-normalised q (B, d), p (B, d), n (B, k, d)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContrastiveLoss(nn.Module):
    """InfoNCE: L = −mean_i log( exp(q_i·p_i/τ) / Σ_{c ∈ P ∪ N} exp(q_i·c/τ) ), where every positive of the
    batch (in-batch negatives) and every hard negative of the batch are candidates for each query."""

    def __init__(self, temperature: float = 0.05, in_batch: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.in_batch = in_batch

    def forward(self, q: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        if self.in_batch:
            candidates = torch.cat([p, n.reshape(-1, n.shape[-1])])  # (B + B*k, d)
            logits = q @ candidates.T
            target = torch.arange(q.shape[0], device=q.device)
        else:
            logits = torch.cat([(q * p).sum(-1, keepdim=True), torch.einsum("bd,bkd->bk", q, n)], dim=1)
            target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return F.cross_entropy(logits / self.temperature, target)
