"""Deep memory's ranking metrics agree with pytrec_eval and ranx (trec_eval definitions)."""

from __future__ import annotations

import numpy as np
import pytest

from twotower.deep_memory.evaluation import ranking_metrics, top_k

pytrec_eval = pytest.importorskip("pytrec_eval")
ranx = pytest.importorskip("ranx")


@pytest.fixture
def ranked():
    rng = np.random.default_rng(0)
    n_queries, n_docs = 40, 60
    scores = rng.normal(size=(n_queries, n_docs))
    relevant = [set(rng.choice(n_docs, size=rng.integers(1, 4), replace=False).tolist()) for _ in range(n_queries)]
    # Some relevant documents are not retrievable at all (not in the store): they still count in recall.
    n_relevant = [len(r) + (i % 5 == 0) for i, r in enumerate(relevant)]
    top = np.argsort(-scores, axis=1, kind="stable")
    return scores, top, relevant, n_relevant


def test_matches_pytrec_eval(ranked):
    scores, top, relevant, n_relevant = ranked
    ours = ranking_metrics(top[:, :10], relevant, [1, 5, 10], n_relevant)
    qrels = {
        f"q{i}": {**{f"d{d}": 1 for d in rel}, **({"missing": 1} if n_relevant[i] > len(rel) else {})}
        for i, rel in enumerate(relevant)
    }
    run = {f"q{i}": {f"d{d}": float(scores[i, d]) for d in top[i, :10]} for i in range(len(top))}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"recall.1,5,10", "recip_rank"}).evaluate(run)
    for k in (1, 5, 10):
        theirs = np.mean([v[f"recall_{k}"] for v in per_query.values()])
        assert ours[f"recall@{k}"] == pytest.approx(theirs, abs=1e-9)
    # The run holds the top 10 only, so trec_eval's reciprocal rank is MRR@10.
    assert ours["mrr@10"] == pytest.approx(np.mean([v["recip_rank"] for v in per_query.values()]), abs=1e-9)


def test_matches_ranx_including_hit_rate(ranked):
    scores, top, relevant, n_relevant = ranked
    ours = ranking_metrics(top[:, :10], relevant, [3, 10], n_relevant)
    qrels = ranx.Qrels(
        {f"q{i}": {**{f"d{d}": 1 for d in rel}, **({"missing": 1} if n_relevant[i] > len(rel) else {})} for i, rel in enumerate(relevant)}
    )
    run = ranx.Run({f"q{i}": {f"d{d}": float(scores[i, d]) for d in top[i, :10]} for i in range(len(top))})
    theirs = ranx.evaluate(qrels, run, ["recall@3", "recall@10", "mrr@10", "hit_rate@10"])
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


def test_top_k_is_exact_inner_product_search():
    rng = np.random.default_rng(1)
    queries, docs = rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(30, 8)).astype(np.float32)
    scores, rows = top_k(queries, docs, 4, batch_size=2)
    expected = np.argsort(-(queries @ docs.T), axis=1)[:, :4]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ docs.T, expected, axis=1), rtol=1e-5)


def test_a_query_without_relevant_documents_is_an_error():
    with pytest.raises(ValueError, match="at least one relevant"):
        ranking_metrics(np.zeros((1, 3), dtype=int), [set()], [1])
