"""Margin-MSE distillation over L2-normalised q (B, d), p (B, d), n (B, k, d) and teacher scores (B, 1 + k)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from twotower.losses._teacher import check_teacher, student_scores


class MarginMSELoss(nn.Module):
    """Margin-MSE: the student's positive-minus-negative margin regresses onto the teacher's,

        L = mean_{i,j} ( (s(q_i, p_i) − s(q_i, n_ij)) − (t_i0 − t_ij) )²,   s(q, c) = scale · q·c,

    over the B rows i and the k hard negatives j of each row. Only margins are matched, so a per-row shift of
    the teacher's scores does not change the loss; their scale does.

    Inputs: L2-normalised q (B, d), p (B, d), n (B, k, d) and `teacher` (B, 1 + k): the teacher's scores of
    [positive, negative_1, ..., negative_k] for each row (a dataset column, as sentence-transformers passes
    `labels`). It raises ValueError when `teacher` is missing, is not (B, 1 + k) or holds NaN/inf.

    `scale` brings the student's margins onto the teacher's scale. The student scores are cosines (q, c are
    unit vectors), so its margins lie in [−2, 2]:
      - teacher scores that are cosines too (a bi-encoder teacher such as all-MiniLM-L6-v2, margins ~0.25 on
        MS MARCO BM25 negatives): keep `scale=1.0`;
      - cross-encoder logits (e.g. ms-marco-MiniLM-L-6-v2, margins of several units up to ~15): the student
        cannot reach them with scale 1 and the loss stays large; set `scale` to about the teacher's margin
        spread divided by the cosine margin you expect, typically 10–20 (scale = 1/τ, i.e. 20 matches the
        InfoNCE temperature 0.05), or rescale the teacher's scores in the data instead.

    References: Hofstätter et al. 2020 "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation" (arXiv:2010.02666); sentence-transformers `MarginMSELoss`.
    """

    name = "margin_mse"
    needs_teacher = True

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = scale

    def forward(
        self, q: torch.Tensor, p: torch.Tensor, n: torch.Tensor, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        t = check_teacher(teacher, q, n, self.name)
        s = self.scale * student_scores(q, p, n)
        return F.mse_loss(s[:, :1] - s[:, 1:], t[:, :1] - t[:, 1:])
