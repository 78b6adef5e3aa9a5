"""Exact top-k search over a document matrix and the ranking metrics deep memory reports.

Definitions follow trec_eval (what pytrec_eval and ranx compute), per query, then averaged over queries:

* recall@k   = |relevant in top k| / |relevant|  (relevant ids missing from the store still count below)
* mrr@k      = 1 / rank of the first relevant result within the top k, else 0
* hit_rate@k = 1 if any relevant result is in the top k, else 0 (LlamaIndex's "hit rate")
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch


def top_k_indices(queries: np.ndarray, docs: np.ndarray, k: int, batch_size: int = 1024) -> np.ndarray:
    """Row indices of the `k` highest inner products per query, best first (ties: lower row first)."""
    return top_k(queries, docs, k, batch_size)[1]


def top_k(queries: np.ndarray, docs: np.ndarray, k: int, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row indices) of the `k` highest inner products per query, best first."""
    k = min(k, len(docs))
    docs = np.ascontiguousarray(docs, dtype=np.float32)
    if docs.flags.writeable:
        docs_t = torch.from_numpy(docs)
    else:
        with warnings.catch_warnings():
            # A store hands out its matrix read-only; torch warns on wrapping it, but it is only read here.
            warnings.simplefilter("ignore", UserWarning)
            docs_t = torch.from_numpy(docs)
    scores, rows = [], []
    with torch.no_grad():
        for start in range(0, len(queries), batch_size):
            q = torch.from_numpy(np.ascontiguousarray(queries[start : start + batch_size], dtype=np.float32))
            s, i = torch.topk(q @ docs_t.T, k, dim=1)
            scores.append(s.numpy())
            rows.append(i.numpy())
    if not scores:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate(scores), np.concatenate(rows)


def ranking_metrics(
    top: np.ndarray,
    relevant: Sequence[set[int]],
    ks: Sequence[int],
    n_relevant: Sequence[int] | None = None,
) -> dict[str, float]:
    """Mean recall@k, mrr@k and hit_rate@k of ranked rows `top` (queries x >= max(ks)).

    `n_relevant[i]` is query i's number of relevant documents, when some of them cannot be retrieved
    (not in the store): they lower recall as trec_eval counts it. Defaults to `len(relevant[i])`.
    """
    return {name: float(values.mean()) for name, values in per_query_metrics(top, relevant, ks, n_relevant).items()}


def per_query_metrics(
    top: np.ndarray,
    relevant: Sequence[set[int]],
    ks: Sequence[int],
    n_relevant: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Like `ranking_metrics`, one value per query (for paired comparisons of two rankings)."""
    if len(top) != len(relevant):
        raise ValueError(f"{len(top)} rankings for {len(relevant)} queries")
    if len(relevant) == 0:
        raise ValueError("no queries to evaluate")
    n_relevant = [len(r) for r in relevant] if n_relevant is None else list(n_relevant)
    if any(n <= 0 for n in n_relevant):
        raise ValueError("every evaluated query needs at least one relevant document")
    out: dict[str, np.ndarray] = {}
    hits = np.array([[row in rel for row in ranked] for ranked, rel in zip(top.tolist(), relevant)], dtype=bool).reshape(len(top), -1)
    denom = np.asarray(n_relevant, dtype=np.float64)
    for k in sorted(set(ks)):
        h = hits[:, :k]
        first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)
        out[f"recall@{k}"] = h.sum(axis=1) / denom
        out[f"mrr@{k}"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
        out[f"hit_rate@{k}"] = h.any(axis=1).astype(np.float64)
    return out
