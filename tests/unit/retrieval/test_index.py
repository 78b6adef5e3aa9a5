"""`twotower.retrieval.exact.exact_search`: the one brute-force top-k, on both of its paths and both metrics."""

from __future__ import annotations

import numpy as np
import pytest

from twotower.retrieval.exact import FEW_QUERIES, exact_search


@pytest.mark.parametrize("n_queries", [1, FEW_QUERIES + 5], ids=["few queries (torch)", "many queries (faiss)"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_search_finds_the_true_top_k(n_queries, metric):
    rng = np.random.default_rng(1)
    queries, docs = rng.normal(size=(n_queries, 8)).astype(np.float32), rng.normal(size=(300, 8)).astype(np.float32)
    scores, rows = exact_search(docs, queries, 4, metric=metric)
    if metric == "ip":
        key = -(queries @ docs.T)
        expected_scores = queries @ docs.T
    else:
        key = expected_scores = ((queries[:, None, :] - docs[None, :, :]) ** 2).sum(-1)
    expected = np.argsort(key, axis=1)[:, :4]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(expected_scores, expected, axis=1), rtol=1e-4, atol=1e-4)


def test_k_is_clipped_to_the_documents_and_shapes_are_checked():
    docs = np.eye(3, dtype=np.float32)
    scores, rows = exact_search(docs, docs[:2], 10)
    assert rows.shape == (2, 3) and rows[:, 0].tolist() == [0, 1]
    assert exact_search(docs, np.zeros((0, 3), np.float32), 2)[1].shape == (0, 2)
    with pytest.raises(ValueError, match="one dimension"):
        exact_search(docs, np.zeros((1, 4), np.float32), 2)
    with pytest.raises(ValueError, match="metric"):
        exact_search(docs, docs, 2, metric="cosine")
