"""Divergence is never silent: a non-finite loss stops training, and broken weights are never indexed."""

from pathlib import Path

import numpy as np
import pytest
import torch

from twotower.models.checkpoint import load_encoder
from twotower.models.module import DivergedError, TwoTowerModule
from twotower.search.encoding import encode_in_batches

OLD_MEAN = Path(__file__).resolve().parents[1] / "data" / "twotower1_mean.pt"


class NaNLoss(torch.nn.Module):
    def forward(self, q, p, n, teacher=None):
        return (q.sum() + p.sum() + n.sum()) * float("nan")


def test_a_non_finite_loss_stops_training_with_the_setting_to_change():
    encoder = load_encoder(OLD_MEAN)
    module = TwoTowerModule(encoder.model.train(), NaNLoss(), optimizer=torch.optim.AdamW)
    model = encoder.model
    batch = {"query": model.tokenize_queries(["egg"]), "documents": model.tokenize_documents(["boil the egg", "bank"])}
    with pytest.raises(DivergedError, match="lower optim.lr"):
        module.training_step(batch, 0)


def test_an_index_refuses_non_finite_vectors():
    encoder = load_encoder(OLD_MEAN)
    with torch.no_grad():
        encoder.model.query_tower.head.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite vectors .* refusing to index"):
        list(encode_in_batches(encoder, ["boil the egg", "a bank loan"], progress=False))
    assert np.isnan(encoder.encode_documents(["egg"])).all()
