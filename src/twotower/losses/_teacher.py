"""Checks on the teacher scores the distillation losses read: one (B, 1 + k) row per query, holding the
teacher's score of [positive, negative_1, ..., negative_k] of that row (a dataset column, the way
sentence-transformers passes `labels`)."""

from __future__ import annotations

import torch


def check_teacher(teacher: torch.Tensor | None, q: torch.Tensor, n: torch.Tensor, loss: str) -> torch.Tensor:
    """The teacher scores as a detached (B, 1 + k) tensor on q's device and dtype.

    Raises ValueError, naming the `loss=...` config that asked for them, when they are missing, when there are
    no hard negatives (k = 0), when they have another shape than (B, 1 + k), or when they hold NaN/inf (naming
    the first bad row). The finiteness check reads one bool
    back from the device, i.e. one host sync per step.
    """
    if teacher is None:
        raise ValueError(
            f"loss={loss} needs teacher scores: set data.prepare.teacher (minilm, a model folder or a .pt)"
        )
    teacher = torch.as_tensor(teacher)
    b, k = q.shape[0], n.shape[1]
    if k == 0:
        raise ValueError(
            f"loss={loss} needs at least one hard negative per row (data.prepare.num_negatives >= 1): "
            "over the positive alone there is no margin and no distribution to distil"
        )
    if tuple(teacher.shape) != (b, 1 + k):
        raise ValueError(
            f"loss={loss} expects teacher scores of shape (B, 1 + k) = ({b}, {1 + k}), one row of "
            f"[positive, negative_1..{k}] scores per query, got {tuple(teacher.shape)}"
        )
    teacher = teacher.detach().to(device=q.device, dtype=q.dtype)
    bad = ~torch.isfinite(teacher).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(
            f"loss={loss}: teacher scores hold NaN/inf in row {rows[0]} of the batch "
            f"({len(rows)} bad row(s) of {b}): {teacher[rows[0]].tolist()}"
        )
    return teacher


def student_scores(q: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """(B, 1 + k) student dot products [q_i·p_i, q_i·n_i1, ..., q_i·n_ik], aligned with the teacher's columns."""
    return torch.cat([(q * p).sum(-1, keepdim=True), torch.einsum("bd,bkd->bk", q, n)], dim=1)
