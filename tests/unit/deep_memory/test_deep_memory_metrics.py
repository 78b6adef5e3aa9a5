"""Deep memory's ranking metrics (its names over `twotower.evaluation.metrics`) agree with pytrec_eval and ranx."""

from __future__ import annotations

import numpy as np
import pytest

from twotower.deep_memory.evaluation import per_query_metrics


def ranking_metrics(*args, **kwargs) -> dict[str, float]:
    return {name: float(values.mean()) for name, values in per_query_metrics(*args, **kwargs).items()}


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
        {
            f"q{i}": {**{f"d{d}": 1 for d in rel}, **({"missing": 1} if n_relevant[i] > len(rel) else {})}
            for i, rel in enumerate(relevant)
        }
    )
    run = ranx.Run({f"q{i}": {f"d{d}": float(scores[i, d]) for d in top[i, :10]} for i in range(len(top))})
    theirs = ranx.evaluate(qrels, run, ["recall@3", "recall@10", "mrr@10", "hit_rate@10"])
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


def test_a_query_without_relevant_documents_is_an_error():
    with pytest.raises(ValueError, match="at least one relevant"):
        ranking_metrics(np.zeros((1, 3), dtype=int), [set()], [1])


def test_precision_and_unretrievable_documents():
    top = np.array([[3, 1, 2], [0, 1, 2]])
    # Query 0: one of its two relevant documents is not in the store; query 1 has one relevant at rank 2.
    values = ranking_metrics(top, [{1}, {1}], [1, 2], n_relevant=[2, 1])
    assert values["recall@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert values["precision@2"] == pytest.approx(0.5)
    assert values["hit_rate@1"] == 0.0 and values["mrr@2"] == pytest.approx(0.5)
