"""Each loss computed on hand-made vectors equals its formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from twotower.losses import ContrastiveLoss, CosineLoss, TripletLoss


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


q = unit([1.0, 0.0], [0.0, 1.0])
p = unit([1.0, 1.0], [0.0, 1.0])          # cos = 0.7071 and 1
n = unit([1.0, 0.0], [1.0, 0.0]).unsqueeze(1)  # cos = 1 and 0


def test_triplet_loss_is_the_hinge_on_cosines():
    c = math.sqrt(0.5)
    expected = (max(0, 0.2 - c + 1.0) + max(0, 0.2 - 1.0 + 0.0)) / 2
    assert TripletLoss(margin=0.2)(q, p, n).item() == pytest.approx(expected, abs=1e-6)


def test_cosine_loss_matches_torch_cosine_embedding_loss():
    ours = CosineLoss(margin=0.1)(q, p, n)
    x1 = torch.cat([q, q])
    x2 = torch.cat([p, n[:, 0]])
    target = torch.tensor([1, 1, -1, -1])
    assert ours.item() == pytest.approx(F.cosine_embedding_loss(x1, x2, target, margin=0.1).item(), abs=1e-6)


def test_contrastive_loss_uses_in_batch_and_hard_negatives():
    tau = 0.5
    loss = ContrastiveLoss(temperature=tau)(q, p, n)
    candidates = torch.cat([p, n[:, 0]])          # 2 positives + 2 hard negatives per query
    logits = q @ candidates.T / tau
    expected = -(logits[0, 0] - logits[0].logsumexp(0) + logits[1, 1] - logits[1].logsumexp(0)) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_contrastive_loss_without_in_batch_negatives():
    tau = 0.1
    loss = ContrastiveLoss(temperature=tau, in_batch=False)(q, p, n)
    pos, neg = (q * p).sum(-1), (q * n[:, 0]).sum(-1)
    expected = (-(pos / tau) + torch.logaddexp(pos / tau, neg / tau)).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_bad_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        ContrastiveLoss(temperature=0)
