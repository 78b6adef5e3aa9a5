"""The query adapter and its training: identity start, real gains where there is signal, and the guard.

An integration test: it trains adapters to a measured gain (tens of seconds on two cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deep_memory_synthetic import synonym_task

from twotower.deep_memory import HashingEmbedding
from twotower.deep_memory.adapter import QueryAdapter
from twotower.deep_memory.store import unit_rows
from twotower.deep_memory.training import (
    RelevanceData,
    TrainingSettings,
    calibrate_temperature,
    evaluate_queries,
    train_adapter,
)

EMBED = HashingEmbedding(dim=128)
FAST = {"epochs": 40, "batch_size": 32, "learning_rate": 1e-2, "validation_split": 0.2, "early_stopping_patience": 40}


def relevance_data(task, queries, relevance) -> RelevanceData:
    row = {d: i for i, d in enumerate(task.ids)}
    offsets = np.cumsum([0] + [len(r) for r in relevance])
    return RelevanceData(
        queries=EMBED(queries),
        offsets=offsets,
        doc_rows=np.array([row[d] for r in relevance for d, _ in r]),
        weights=np.array([s for r in relevance for _, s in r], dtype=np.float32),
    )


@pytest.fixture(scope="module")
def task():
    t = synonym_task()
    return t, unit_rows(EMBED(t.texts))


@pytest.mark.parametrize("kind,rank", [("linear", None), ("linear", 8), ("mlp", None)])
def test_an_untrained_adapter_is_the_identity_and_numpy_matches_torch(kind, rank):
    adapter = QueryAdapter(16, kind=kind, rank=rank).eval()
    q = torch.randn(5, 16)
    torch.testing.assert_close(adapter(q), q)
    assert adapter.distance_from_identity().item() == 0.0
    for p in adapter.parameters():
        torch.nn.init.normal_(p, std=0.1)
    np.testing.assert_allclose(adapter.numpy_forward()(q.numpy()), adapter(q).detach().numpy(), atol=1e-5)


def test_training_lifts_held_out_recall_and_is_accepted(task):
    t, docs = task
    outcome = train_adapter(relevance_data(t, t.train_queries, t.train_relevance), docs, TrainingSettings.load(FAST))
    test = relevance_data(t, t.test_queries, t.test_relevance)
    before = evaluate_queries(torch.from_numpy(test.queries), torch.from_numpy(docs), test.qrels(), None, (10,))
    after = evaluate_queries(
        torch.from_numpy(test.queries), torch.from_numpy(docs), test.qrels(), outcome.adapter, (10,)
    )
    assert before["recall@10"] < 0.1  # plain search cannot bridge "t3ask" to "t3doc"
    assert after["recall@10"] > 0.8
    assert outcome.accepted, outcome.reason
    assert outcome.best_val["recall@10"] > outcome.base_val["recall@10"]


def test_mined_hard_negatives_also_learn(task):
    t, docs = task
    settings = TrainingSettings.load({**FAST, "negatives": "mined", "hard_negatives": 8})
    outcome = train_adapter(relevance_data(t, t.train_queries, t.train_relevance), docs, settings)
    assert outcome.negatives == "mined"
    assert outcome.best_val["recall@10"] > outcome.base_val["recall@10"] + 0.3


def test_a_model_that_cannot_beat_plain_search_is_rejected(task):
    t, docs = task
    rng = np.random.default_rng(0)
    # Relevance that has nothing to do with the text: nothing learnable, so no clear validation gain.
    noise = [[(t.ids[i], 1.0)] for i in rng.integers(0, len(t.ids), len(t.train_queries))]
    outcome = train_adapter(
        relevance_data(t, t.train_queries, noise), docs, TrainingSettings.load({**FAST, "epochs": 5})
    )
    assert not outcome.accepted
    assert "not used by default" in outcome.reason


def test_temperature_calibration_prefers_a_sharp_softmax_when_scores_are_crowded():
    rng = np.random.default_rng(0)
    common = rng.normal(size=16)
    # Anisotropic vectors (a big shared component, like mean-pooled word vectors): cosines crowd near 1.
    docs = unit_rows(common + 0.1 * rng.normal(size=(200, 16)))
    queries = torch.from_numpy(docs[:50] + 0.01 * rng.normal(size=(50, 16)).astype(np.float32))
    data = RelevanceData(queries.numpy(), np.arange(51), np.arange(50), np.ones(50, np.float32))
    assert calibrate_temperature(queries, torch.from_numpy(docs), data) < 0.02


def test_settings_come_from_the_hydra_config_and_reject_unknown_keys():
    settings = TrainingSettings.load({"epochs": 3, "adapter": {"kind": "linear"}})
    assert settings.epochs == 3
    assert settings.adapter["_target_"] == "twotower.deep_memory.adapter.QueryAdapter"
    assert settings.adapter["kind"] == "linear" and settings.adapter["hidden"] == 512  # merged, not replaced
    with pytest.raises(TypeError, match="unknown deep-memory training setting"):
        TrainingSettings.load({"epoch": 3})
    with pytest.raises(ValueError, match="validation_split"):
        TrainingSettings.load({"validation_split": 1.5})


def test_defaults_live_in_the_settings_class_only():
    # twotower/conf/deep_memory/default.yaml may override for an installation, but as shipped it restates nothing.
    assert TrainingSettings.load() == TrainingSettings()


def test_early_stopping_ends_training_after_patience_epochs_without_gain(task):
    t, docs = task
    # Recall at a depth beyond the store's 300 documents is 1 whatever the model: it can never improve.
    flat = {**FAST, "monitor": "recall@500", "epochs": 20, "early_stopping_patience": 2}
    outcome = train_adapter(relevance_data(t, t.train_queries, t.train_relevance), docs, TrainingSettings.load(flat))
    # Epoch 0 sets the best; epochs 1 and 2 do not beat it, so Lightning's EarlyStopping stops there.
    assert outcome.epochs_run == 3 and outcome.best_epoch == 1
    assert not outcome.accepted


def test_the_paired_test_needs_a_consistent_gain():
    from twotower.deep_memory.acceptance import judge, paired_test

    base = np.zeros(40)
    assert paired_test(base, base) == (0.0, 1.0)
    assert paired_test(base, base + 0.5)[1] == 0.0
    noisy = np.tile([1.0, -1.0], 20)
    assert paired_test(base, noisy)[1] > 0.4
    settings = TrainingSettings()
    metrics = ("recall@10", "recall@1", "mrr@10")
    gain = np.r_[np.ones(10), np.zeros(30)]
    accepted, reason, t, p = judge({m: base for m in metrics}, {m: gain for m in metrics}, settings)
    assert accepted and p < 0.05 and "paired t=" in reason
    accepted, reason, _, p = judge({m: base for m in metrics}, {m: noisy for m in metrics}, settings)
    assert not accepted and "not a clear gain" in reason
