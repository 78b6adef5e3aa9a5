"""Losses over L2-normalised query, positive and k negative embeddings: q (B, d), p (B, d), n (B, k, d).

Every loss is called as `loss(q, p, n, teacher=None)`, where `teacher` (B, 1 + k) holds a teacher's scores of
[positive, negative_1..k] for each row; the distillation losses (`needs_teacher = True`) require it, the
others ignore it. `EmbeddingMSELoss` (`needs_teacher_vectors = True`) also takes `teacher_vectors`, the
teacher's own vectors of the batch's queries and passages.

One loss per module, each a small `nn.Module` whose docstring holds its maths; configs in `twotower/conf/loss/` name
the class they build.
"""

from twotower.losses.combined import CombinedLoss
from twotower.losses.contrastive import ContrastiveLoss
from twotower.losses.cosine import CosineLoss
from twotower.losses.embedding_mse import EmbeddingMSELoss
from twotower.losses.kl import DistillKLLoss
from twotower.losses.margin_mse import MarginMSELoss
from twotower.losses.triplet import TripletLoss

__all__ = [
    "CombinedLoss",
    "ContrastiveLoss",
    "CosineLoss",
    "DistillKLLoss",
    "EmbeddingMSELoss",
    "MarginMSELoss",
    "TripletLoss",
]
