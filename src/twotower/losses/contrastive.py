"""InfoNCE with in-batch and hard negatives over L2-normalised q (B, d), p (B, d), n (B, k, d)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class ContrastiveLoss(nn.Module):
    """InfoNCE (multiple negatives ranking loss):

        L = −mean_i log( exp(q_i·p_i/τ) / Σ_{c ∈ P ∪ N} exp(q_i·c/τ) )

    where every positive of the batch (in-batch negatives) and every hard negative of the batch are candidates
    for each query. With `in_batch=False` the candidates of query i are its own [p_i, n_i1..n_ik] only.

    Inputs: L2-normalised q (B, d), p (B, d), n (B, k, d); `teacher` is accepted and ignored.

    Across DDP ranks (`gather=True`, `in_batch=True`, torch.distributed initialised with world_size W > 1), the
    candidates P ∪ N are those of the whole global batch: every rank all-gathers the positives and the
    negatives of all ranks, in the order [P_0; P_1; ...; N_0; N_1; ...] (the order of a single process given
    the concatenated batch), and its query i targets column offset_r + i, offset_r = Σ_{s<r} B_s (= r·B).
    Each rank's loss L_r is still the mean over its own B queries only.

    Gradients: the gather is an autograd function whose backward all-reduces (sums) the gradient of the
    gathered tensor over the ranks and keeps the local slice, so the candidates of rank s receive
    Σ_r ∂L_r/∂c_s, including the terms from the other ranks' queries. (The common shortcut of gathering
    detached copies and putting the local tensor back drops those cross-rank terms; it is exact only when
    every rank computes the loss of the whole global batch.) DDP then averages the parameter gradients:
    (1/W) Σ_r ∇L_r = ∇[(1/W) Σ_r L_r], and with equal B on every rank (1/W) Σ_r L_r is the single-process
    loss over the concatenated W·B batch, so the parameter update equals the single-process one exactly.
    Equivalently, the gradient on a rank's own embeddings is W times the single-process gradient of those
    rows; DDP's 1/W average cancels the factor. With unequal batch sizes DDP weighs ranks, not examples, as it
    does for any loss. Nothing changes without torch.distributed, with world_size 1, or with `gather=False`.

    References: van den Oord et al. 2018 "Representation Learning with Contrastive Predictive Coding";
    Karpukhin et al. 2020 "Dense Passage Retrieval" (in-batch negatives); sentence-transformers
    `MultipleNegativesRankingLoss(gather_across_devices=True)`, which gathers with the same summed backward
    (`torch.distributed.nn.all_gather`, deprecated in recent torch, hence the small function below).
    """

    needs_teacher = False

    def __init__(self, temperature: float = 0.05, in_batch: bool = True, gather: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.in_batch = in_batch
        self.gather = gather

    def forward(
        self, q: torch.Tensor, p: torch.Tensor, n: torch.Tensor, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not self.in_batch:
            logits = torch.cat([(q * p).sum(-1, keepdim=True), torch.einsum("bd,bkd->bk", q, n)], dim=1)
            target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
            return F.cross_entropy(logits / self.temperature, target)
        if self.gather and _distributed():
            candidates, offset = _gather_candidates(p, n)
        else:
            candidates, offset = torch.cat([p, n.reshape(-1, n.shape[-1])]), 0  # (B + B*k, d)
        logits = q @ candidates.T
        target = torch.arange(offset, offset + q.shape[0], device=q.device)
        return F.cross_entropy(logits / self.temperature, target)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums the gathered tensor's gradient over the ranks and returns the local slice
    (a reduce-scatter, written as an all_reduce so that it runs on gloo as well as NCCL)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank = dist.get_rank()
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank]


def _gather_candidates(p: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, int]:
    """([P_0; ...; P_{W-1}; N_0; ...; N_{W-1}] with gradients, Σ_{s<rank} B_s). Batch sizes may differ across
    ranks (a short last batch): the local rows are zero-padded to the largest B for the gather and cut back."""
    b, k, d = n.shape
    sizes = torch.tensor([p.shape[0], k], device=p.device)
    all_sizes = [torch.empty_like(sizes) for _ in range(dist.get_world_size())]
    dist.all_gather(all_sizes, sizes)
    batch_sizes, ks = zip(*(s.tolist() for s in all_sizes))
    if len(set(ks)) > 1:
        raise ValueError(f"every rank needs the same number of hard negatives k to gather them, got {list(ks)}")
    rows = max(batch_sizes)
    local = torch.cat([p, n.reshape(b * k, d)])  # (B + B*k, d)
    if b < rows:
        local = torch.cat([p, p.new_zeros(rows - b, d), n.reshape(b * k, d), n.new_zeros((rows - b) * k, d)])
    gathered = _AllGather.apply(local)  # (W, rows + rows*k, d)
    positives = [gathered[r, :bs] for r, bs in enumerate(batch_sizes)]
    negatives = [gathered[r, rows : rows + bs * k] for r, bs in enumerate(batch_sizes)]
    return torch.cat(positives + negatives), sum(batch_sizes[: dist.get_rank()])
