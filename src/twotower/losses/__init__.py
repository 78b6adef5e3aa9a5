"""Losses over L2-normalised query, positive and k negative embeddings: q (B, d), p (B, d), n (B, k, d).

One loss per module, each a small `nn.Module` whose docstring holds its maths; configs in `conf/loss/` name
the class they build.
"""

from twotower.losses.contrastive import ContrastiveLoss
from twotower.losses.cosine import CosineLoss
from twotower.losses.triplet import TripletLoss

__all__ = ["ContrastiveLoss", "CosineLoss", "TripletLoss"]
