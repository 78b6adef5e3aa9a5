"""Listwise KL distillation over L2-normalised q (B, d), p (B, d), n (B, k, d) and teacher scores (B, 1 + k)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from twotower.losses._teacher import check_teacher, student_scores


class DistillKLLoss(nn.Module):
    """Listwise KL distillation: over each row's candidates [p_i, n_i1, ..., n_ik],

        L = mean_i KL( softmax(t_i / τ_t) ‖ softmax(s_i / τ_s) )
          = mean_i Σ_j P_t(ij) (log P_t(ij) − log P_s(ij)),   s_ij = q_i·c_ij (cosines),

    the student's distribution over the row's 1 + k candidates moving towards the teacher's (no in-batch
    candidates: the teacher scored only the row's own passages).

    Inputs: L2-normalised q (B, d), p (B, d), n (B, k, d) and `teacher` (B, 1 + k): the teacher's scores of
    [positive, negative_1, ..., negative_k] for each row (a dataset column, as sentence-transformers passes
    `labels`). It raises ValueError when `teacher` is missing, is not (B, 1 + k) or holds NaN/inf.

    Temperatures:
      - `temperature` τ_s (student, default 0.05): the InfoNCE temperature of `ContrastiveLoss`, so that
        combined with it both losses shape the same student distribution softmax(s/0.05).
      - `teacher_temperature` τ_t (default 0.05) for cosine teacher scores (a bi-encoder teacher). Measured
        with all-MiniLM-L6-v2 on 200 MS MARCO dev queries (1 positive + 3 BM25 negatives): cosines 0.74 vs
        0.48–0.50, row spread median 0.34; τ_t = 0.05 puts on average 0.73 of the mass on the positive and
        keeps the ranking of the negatives (entropy 0.45 of the uniform 1.39), 0.02 is close to one-hot
        (entropy 0.18) and 0.2 close to uniform (1.11). With τ_t = τ_s the minimum is reached when the
        student's cosines equal the teacher's up to a per-row shift. For cross-encoder logits (spreads of
        several units) set τ_t ≈ 1. Keep spread/τ_t well under ~100: beyond that float32 softmax underflows
        and those candidates drop out of the loss.

    No τ_s² factor (Hinton et al.) is applied: the gradient with respect to the student score s_ij is
    (P_s(ij) − P_t(ij)) / (B τ_s), the same scale as InfoNCE's (P(ij) − 1[j = positive]) / (B τ), which is why
    `twotower/conf/loss/combined.yaml` weighs the two 1.0 each. (sentence-transformers' `DistillKLDivLoss` multiplies by
    τ_s², which for τ_s = 0.05 shrinks this loss 400-fold next to InfoNCE.)

    References: Hinton et al. 2015 "Distilling the Knowledge in a Neural Network"; Lin et al. 2020
    "Distilling Dense Representations for Ranking using Tightly-Coupled Teachers" (arXiv:2010.11386);
    sentence-transformers `DistillKLDivLoss`; Tevatron's distillation (KL from the reranker's scores).
    """

    name = "kl"
    needs_teacher = True

    def __init__(self, temperature: float = 0.05, teacher_temperature: float = 0.05) -> None:
        super().__init__()
        for label, value in (("temperature", temperature), ("teacher_temperature", teacher_temperature)):
            if not 0 < value < math.inf:
                raise ValueError(f"{label} must be a positive finite number, got {value}")
        self.temperature = temperature
        self.teacher_temperature = teacher_temperature

    def forward(
        self, q: torch.Tensor, p: torch.Tensor, n: torch.Tensor, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        t = check_teacher(teacher, q, n, self.name)
        log_student = F.log_softmax(student_scores(q, p, n) / self.temperature, dim=1)
        log_teacher = F.log_softmax(t / self.teacher_temperature, dim=1)
        # log_target: exact where the teacher's probabilities underflow (no 0 · log 0).
        return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
