"""Deep Memory's ranking metrics under its own (Deep Lake's) names, per query.

Nothing is computed here: rankings come from `twotower.retrieval.exact.exact_search` and metrics from
`twotower.evaluation.metrics` (trec_eval definitions, checked against pytrec_eval and ranx). This module only
maps store rows to ids and keeps the keys deep memory reports:

* recall@k    = |relevant in top k| / |relevant|  (relevant ids missing from the store still count below)
* mrr@k       = 1 / rank of the first relevant result within the top k, else 0
* hit_rate@k  = 1 if any relevant result is in the top k, else 0 (LlamaIndex's "hit rate")
* precision@k = |relevant in top k| / k
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from twotower.evaluation import metrics
from twotower.retrieval.exact import exact_search

KINDS = ("recall", "mrr", "hit_rate", "precision")
REPORTED = ("recall", "mrr", "hit_rate")  # what `DeepMemory.evaluate` returns, as Deep Lake does


def per_query_metrics(
    top: np.ndarray,
    relevant: Sequence[set[int]],
    ks: Sequence[int],
    n_relevant: Sequence[int] | None = None,
    kinds: Sequence[str] = KINDS,
) -> dict[str, np.ndarray]:
    """`kind@k` of ranked store rows `top` (queries x >= max(ks)), one value per query (for paired tests).

    `n_relevant[i]` is query i's number of relevant documents, when some of them cannot be retrieved (not in
    the store): they lower recall as trec_eval counts them. Defaults to `len(relevant[i])`.
    """
    if len(top) != len(relevant):
        raise ValueError(f"{len(top)} rankings for {len(relevant)} queries")
    if len(relevant) == 0:
        raise ValueError("no queries to evaluate")
    n_relevant = [len(r) for r in relevant] if n_relevant is None else list(n_relevant)
    if any(n <= 0 for n in n_relevant):
        raise ValueError("every evaluated query needs at least one relevant document")
    qrels = {
        str(i): {**{str(row): 1 for row in rel}, **{f"missing:{j}": 1 for j in range(n - len(rel))}}
        for i, (rel, n) in enumerate(zip(relevant, n_relevant))
    }
    ranking = {str(i): [str(row) for row in ranked if row >= 0] for i, ranked in enumerate(np.asarray(top).tolist())}
    ks = sorted({int(k) for k in ks})
    _, values = metrics.per_query_metrics(ranking, qrels, ks)
    return {f"{kind}@{k}": values[f"{kind}@{k}"] for k in ks for kind in kinds}


def top_rows(queries: np.ndarray, docs: np.ndarray, k: int) -> np.ndarray:
    """Store rows of the `k` best documents (inner product) of each query, best first."""
    return exact_search(docs, queries, k)[1]


def evaluate_queries(
    queries: torch.Tensor,
    docs: torch.Tensor,
    relevant: list[set[int]],
    adapter: torch.nn.Module | None = None,
    ks: tuple[int, ...] = (1, 10),
    batch_size: int = 1024,
    per_query: bool = False,
) -> dict:
    """recall@k, mrr@k, hit_rate@k, precision@k of `queries` (adapted if `adapter`) ranked against all `docs`.

    Means, or with `per_query` one array per metric (for paired comparisons).
    """
    with torch.no_grad():
        if adapter is not None:
            was_training = adapter.training
            adapter.eval()
            queries = torch.cat([adapter(queries[s : s + batch_size]) for s in range(0, len(queries), batch_size)])
            adapter.train(was_training)
    top = top_rows(queries.numpy(), docs.numpy(), max(ks))
    values = per_query_metrics(top, relevant, ks)
    return values if per_query else {name: float(v.mean()) for name, v in values.items()}
