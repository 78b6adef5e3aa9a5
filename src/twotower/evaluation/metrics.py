"""Retrieval metrics over ranked lists, vectorised with numpy.

Every judged query counts: a query with no retrieved list, or whose relevant passages are not retrieved,
scores 0 (the MS MARCO convention), so numbers are comparable across models and depths. Definitions follow
trec_eval (checked against pytrec_eval and ranx in the tests): linear gains for NDCG, P@k divides by k,
AP divides by the number of relevant passages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from twotower.data.msmarco import Qrels, Run

RECALL_KS = (1, 5, 10, 20, 100)
PRECISION_KS = (1, 5, 10)
NDCG_KS = (1, 5, 10, 20)
METRIC_NAMES = (
    ["mrr", "mrr@10", "map"]
    + [f"recall@{k}" for k in RECALL_KS]
    + [f"precision@{k}" for k in PRECISION_KS]
    + [f"ndcg@{k}" for k in NDCG_KS]
)


def run_to_ranking(run: Run) -> dict[str, list[str]]:
    """{qid: {pid: score}} -> {qid: [pid, ...]} best first."""
    return {q: sorted(docs, key=docs.__getitem__, reverse=True) for q, docs in run.items()}


def per_query_metrics(
    ranking: Mapping[str, Sequence[str]], qrels: Qrels, ks: Sequence[int] = ()
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Metric values per judged query (queries with at least one relevant passage), in a fixed order.

    Every name in METRIC_NAMES, plus recall@k, precision@k, mrr@k and hit_rate@k (1 when a relevant passage is
    in the top k, LlamaIndex's "hit rate") at each cut-off in `ks`.
    """
    qids = [q for q, judged in qrels.items() if any(r > 0 for r in judged.values())]
    if not qids:
        raise ValueError("qrels hold no query with a relevant passage: nothing to evaluate")
    depth = max([len(ranking.get(q, ())) for q in qids] + [max(RECALL_KS), *ks])
    gains = np.zeros((len(qids), depth), dtype=np.float64)
    ideal = np.zeros((len(qids), depth), dtype=np.float64)
    n_rel = np.zeros(len(qids), dtype=np.float64)
    for i, q in enumerate(qids):
        judged = qrels[q]
        ranked = ranking.get(q, ())
        gains[i, : len(ranked)] = [max(judged.get(p, 0), 0) for p in ranked]
        positive = sorted((r for r in judged.values() if r > 0), reverse=True)[:depth]
        ideal[i, : len(positive)] = positive
        n_rel[i] = sum(1 for r in judged.values() if r > 0)

    relevant = gains > 0
    ranks = np.arange(1, depth + 1, dtype=np.float64)
    first_hit = np.where(relevant.any(1), relevant.argmax(1) + 1, np.inf)
    hits_so_far = np.cumsum(relevant, axis=1)
    out: dict[str, np.ndarray] = {
        "mrr": 1.0 / first_hit,
        "mrr@10": np.where(first_hit <= 10, 1.0 / first_hit, 0.0),
        "map": (relevant * hits_so_far / ranks).sum(1) / n_rel,
    }
    for k in RECALL_KS:
        out[f"recall@{k}"] = hits_so_far[:, k - 1] / n_rel
    for k in PRECISION_KS:
        out[f"precision@{k}"] = hits_so_far[:, k - 1] / k
    discount = 1.0 / np.log2(ranks + 1)
    for k in NDCG_KS:
        dcg = (gains[:, :k] * discount[:k]).sum(1)
        idcg = (ideal[:, :k] * discount[:k]).sum(1)
        out[f"ndcg@{k}"] = dcg / idcg
    for k in ks:
        out[f"recall@{k}"] = hits_so_far[:, k - 1] / n_rel
        out[f"precision@{k}"] = hits_so_far[:, k - 1] / k
        out[f"mrr@{k}"] = np.where(first_hit <= k, 1.0 / first_hit, 0.0)
        out[f"hit_rate@{k}"] = (hits_so_far[:, k - 1] > 0).astype(np.float64)
    return qids, out


def retrieval_metrics(ranking: Mapping[str, Sequence[str]] | Run, qrels: Qrels) -> dict[str, float]:
    """Mean of every metric in METRIC_NAMES over all judged queries.

    `ranking` is {qid: [pid, ...]} best first, or a run {qid: {pid: score}}.
    """
    if ranking and isinstance(next(iter(ranking.values())), Mapping):
        ranking = run_to_ranking(ranking)  # type: ignore[arg-type]
    _, values = per_query_metrics(ranking, qrels)  # type: ignore[arg-type]
    return {name: float(values[name].mean()) for name in METRIC_NAMES}


def per_query_values(
    ranking: Mapping[str, Sequence[str]], qrels: Qrels, names: Sequence[str] = METRIC_NAMES
) -> dict[str, list]:
    """{"qids": [...], metric: [value per query], ...} for `names`, over the ranked queries that have a relevant
    passage judged: what a paired test between two evaluations of the same queries needs
    (`twotower.evaluation.significance`). {} when no ranked query is judged."""
    judged = {q: qrels[q] for q in ranking if q in qrels and any(r > 0 for r in qrels[q].values())}
    if not judged:
        return {}
    qids, values = per_query_metrics(ranking, judged)
    return {"qids": qids, **{name: values[name].tolist() for name in names if name in values}}
