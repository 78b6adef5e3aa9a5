"""Losses over L2-normalised query, positive and k negative embeddings: q (B, d), p (B, d), n (B, k, d).

Every loss is called as `loss(q, p, n, teacher=None)`, where `teacher` (B, 1 + k) holds a teacher's scores of
[positive, negative_1..k] for each row; the distillation losses (`needs_teacher = True`) require it, the
others ignore it.

One loss per module, each a small `nn.Module` whose docstring holds its maths; configs in `conf/loss/` name
the class they build.
"""

from twotower.losses.combined import CombinedLoss
from twotower.losses.contrastive import ContrastiveLoss
from twotower.losses.cosine import CosineLoss
from twotower.losses.kl import DistillKLLoss
from twotower.losses.margin_mse import MarginMSELoss
from twotower.losses.triplet import TripletLoss

__all__ = ["CombinedLoss", "ContrastiveLoss", "CosineLoss", "DistillKLLoss", "MarginMSELoss", "TripletLoss"]
