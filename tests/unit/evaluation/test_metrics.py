"""Our vectorised metrics agree with trec_eval (pytrec_eval) and ranx on random runs."""

import numpy as np
import pytest
import pytrec_eval
from ranx import Qrels as RanxQrels
from ranx import Run as RanxRun
from ranx import evaluate as ranx_evaluate

from twotower.evaluation.metrics import METRIC_NAMES, retrieval_metrics

TREC_NAMES = {
    "mrr": "recip_rank",
    "map": "map",
    **{f"recall@{k}": f"recall_{k}" for k in (1, 5, 10, 20, 100)},
    **{f"precision@{k}": f"P_{k}" for k in (1, 5, 10)},
    **{f"ndcg@{k}": f"ndcg_cut_{k}" for k in (1, 5, 10, 20)},
}


def random_run(seed: int, n_queries=60, n_docs=300, depth=150):
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        n_rel = int(rng.integers(1, 5))
        rel_docs = rng.choice(n_docs, n_rel, replace=False)
        qrels[qid] = {f"d{d}": int(rng.integers(1, 4)) for d in rel_docs}
        if q % 7 == 0:
            qrels[qid]["d_unjudged_zero"] = 0
        if q % 11 == 0:
            continue  # a judged query the system returned nothing for: must score 0
        retrieved = rng.choice(n_docs, int(rng.integers(5, depth)), replace=False)
        scores = rng.permutation(len(retrieved)).astype(float)  # distinct: no tie-breaking ambiguity
        run[qid] = {f"d{d}": float(s) for d, s in zip(retrieved, scores)}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_pytrec_eval(seed):
    qrels, run = random_run(seed)
    ours = retrieval_metrics(run, qrels)

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_NAMES.values()))
    per_query = evaluator.evaluate(run)
    for name, trec in TREC_NAMES.items():
        # trec_eval skips queries missing from the run; MS MARCO counts them as 0.
        expected = sum(per_query[q][trec] for q in per_query) / len(qrels)
        assert ours[name] == pytest.approx(expected, abs=1e-9), name


def test_metrics_match_ranx():
    qrels, run = random_run(5)
    ours = retrieval_metrics(run, qrels)
    names = ["mrr@10", "ndcg@10", "recall@10", "map"]
    # make_comparable scores the queries missing from the run as 0, our convention too.
    theirs = ranx_evaluate(RanxQrels(qrels), RanxRun(run), names, make_comparable=True)
    for name in names:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-9), name


def test_hand_made_ranking():
    qrels = {"a": {"x": 1}, "b": {"y": 1, "z": 1}}
    ranking = {"a": ["p", "x"], "b": ["y", "p", "q", "z"]}
    m = retrieval_metrics(ranking, qrels)
    assert m["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["recall@1"] == pytest.approx((0 + 0.5) / 2)
    assert m["map"] == pytest.approx((1 / 2 + (1 + 2 / 4) / 2) / 2)
    assert set(m) == set(METRIC_NAMES)


def test_query_without_results_scores_zero():
    qrels = {"a": {"x": 1}, "b": {"y": 1}}
    assert retrieval_metrics({"a": ["x"]}, qrels)["mrr@10"] == pytest.approx(0.5)
