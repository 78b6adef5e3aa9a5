"""Query updates and pruning, checked against their one-line formulas."""

import numpy as np
import pytest

from twotower.emb_opt import RLUpdate, ScoredQueries, TopKContinuous, TopKDiscrete, TopKPrune


def batch(vectors, result_vectors, scores, valid=None, ids=None, roots=None):
    scores = np.asarray(scores, dtype=float)
    q, k = scores.shape
    return ScoredQueries(
        vectors=np.asarray(vectors, dtype=np.float32),
        result_ids=np.arange(q * k).reshape(q, k) if ids is None else np.asarray(ids),
        result_vectors=np.asarray(result_vectors, dtype=np.float32),
        scores=scores,
        valid=np.ones((q, k), bool) if valid is None else np.asarray(valid),
        root_ids=np.arange(q) if roots is None else np.asarray(roots),
    )


@pytest.fixture
def random_batch():
    rng = np.random.default_rng(0)
    valid = rng.random((4, 6)) > 0.2
    valid[:, 0] = True
    return batch(rng.normal(size=(4, 3)), rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6)), valid)


def test_rl_gradient_matches_the_formula_query_by_query(random_batch):
    b, lam = random_batch, 0.3
    new = RLUpdate(lr=[0.1, 0.7], distance_penalty=lam)(b)

    for row in range(len(b)):
        s = b.scores[row][b.valid[row]]
        r = b.result_vectors[row][b.valid[row]].astype(float)
        q = b.vectors[row].astype(float)
        advantage = (s - s.mean()) / np.sqrt(s.var() + 1e-8)
        grad = np.mean([2 * (a + lam) * (q - ri) for a, ri in zip(advantage, r)], axis=0)
        np.testing.assert_allclose(new.vectors[row], q - 0.1 * grad, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(new.vectors[len(b) + row], q - 0.7 * grad, rtol=1e-5, atol=1e-5)
    assert new.parents.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]


def test_rl_moves_towards_the_better_result_and_away_from_the_worse():
    good, bad = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    b = batch([[0.5, 0.5]], [[good, bad]], [[2.0, -1.0]])
    q = RLUpdate(lr=0.1)(b).vectors[0]
    assert np.linalg.norm(q - good) < np.linalg.norm(b.vectors[0] - good)
    assert np.linalg.norm(q - bad) > np.linalg.norm(b.vectors[0] - bad)


def test_rl_max_norm_caps_the_step(random_batch):
    new = RLUpdate(lr=1.0, max_norm=0.05)(random_batch)
    steps = np.linalg.norm(new.vectors - random_batch.vectors, axis=1)
    assert steps.max() <= 0.05 + 1e-6
    assert np.linalg.norm(RLUpdate(lr=1.0)(random_batch).vectors - random_batch.vectors, axis=1).max() > 0.05


def test_invalid_slots_do_not_influence_any_update(random_batch):
    poisoned = batch(
        random_batch.vectors,
        np.where(random_batch.valid[..., None], random_batch.result_vectors, 1e6),
        np.where(random_batch.valid, random_batch.scores, 1e6),
        random_batch.valid,
    )
    for make in (lambda: RLUpdate(lr=0.5, distance_penalty=0.1), lambda: TopKContinuous(3), lambda: TopKDiscrete(2)):
        np.testing.assert_allclose(make()(poisoned).vectors, make()(random_batch).vectors, rtol=1e-6)


def test_topk_continuous_is_the_mean_of_the_k_best_results():
    results = np.array([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [9.0, 9.0]]])
    b = batch([[5.0, 5.0]], results, [[1.0, 3.0, 2.0, 0.5]])
    np.testing.assert_allclose(TopKContinuous(k=2)(b).vectors, [[1.0, 2.0]])


def test_topk_discrete_makes_the_best_items_queries_once_each():
    # Both queries rank item 7 first; it becomes one query, and query 1 takes its next best (4) instead.
    ids = np.array([[7, 1, 2], [7, 3, 4]])
    scores = np.array([[9.0, 5.0, 1.0], [9.0, 6.0, 0.0]])
    results = ids[..., None] * np.ones((1, 1, 2))
    update = TopKDiscrete(k=2)

    first = update(batch(np.zeros((2, 2)), results, scores, ids=ids))
    assert sorted(first.vectors[:, 0].tolist()) == [1.0, 3.0, 4.0, 7.0]

    second = update(batch(np.zeros((2, 2)), results, scores, ids=ids))  # fresh: 7, 1, 3, 4 were used
    assert second.vectors[:, 0].tolist() == [2.0] and second.parents.tolist() == [0]

    update.reset()
    beam = TopKDiscrete(k=2, max_queries=2)(batch(np.zeros((2, 2)), results, scores, ids=ids))
    assert beam.vectors[:, 0].tolist() == [7.0, 3.0] and beam.parents.tolist() == [0, 1]


def test_prune_keeps_the_best_queries_overall_or_per_root():
    scores = np.array([[0.1, 0.9], [0.5, 0.5], [0.8, 0.0], [0.2, 0.3]])
    b = batch(np.zeros((4, 1)), np.zeros((4, 2, 1)), scores, roots=[0, 0, 1, 1])
    assert TopKPrune(2, agg="max")(b).tolist() == [True, False, True, False]
    assert TopKPrune(2, agg="mean")(b).tolist() == [True, True, False, False]
    assert TopKPrune(1, agg="mean", group_by="root")(b).tolist() == [True, False, True, False]


def test_bad_hyper_parameters_are_rejected():
    with pytest.raises(ValueError, match="k must be >= 1"):
        TopKDiscrete(k=0)
    with pytest.raises(ValueError, match="agg"):
        TopKPrune(3, agg="median")
    with pytest.raises(ValueError, match="max_norm"):
        RLUpdate(max_norm=0)
