"""Full-corpus retrieval evaluation: encode every passage, search with faiss, score with `metrics`.

The training callback and `evaluate.py` both call `evaluate_encoder`, so their numbers are the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from twotower.models.encoder import TwoTowerEncoder
from twotower.index import exact_search
from twotower.evaluation.metrics import retrieval_metrics
from twotower.data.msmarco import Split


@dataclass
class EvalResult:
    metrics: dict[str, float]
    ranking: dict[str, list[str]]
    scores: dict[str, list[float]]
    timings: dict[str, float] = field(default_factory=dict)
    num_queries: int = 0
    num_passages: int = 0


def judged_queries(split: Split, max_queries: int | None = None) -> list[str]:
    """The queries that have a relevant passage judged, in file order, capped at `max_queries`."""
    qids = [q for q in split.queries if any(r > 0 for r in split.qrels.get(q, {}).values())]
    return qids[:max_queries] if max_queries else qids


def evaluate_encoder(encoder: TwoTowerEncoder, split: Split, max_queries: int | None = None, k: int = 100,
                     progress: bool = False, doc_vectors: np.ndarray | None = None) -> EvalResult:
    """Retrieve the top `k` of the whole collection for each judged query and compute every metric."""
    qids = judged_queries(split, max_queries)
    pids = list(split.collection)
    t0 = time.perf_counter()
    if doc_vectors is None:
        doc_vectors = encoder.encode_documents([split.collection[p] for p in pids], progress=progress)
    t1 = time.perf_counter()
    query_vectors = encoder.encode_queries([split.queries[q] for q in qids])
    t2 = time.perf_counter()
    scores, rows = exact_search(doc_vectors, query_vectors, k)
    t3 = time.perf_counter()
    ranking = {q: [pids[i] for i in row if i >= 0] for q, row in zip(qids, rows)}
    qrels = {q: split.qrels[q] for q in qids}
    return EvalResult(
        metrics=retrieval_metrics(ranking, qrels),
        ranking=ranking,
        scores={q: s.tolist() for q, s in zip(qids, scores)},
        timings={"encode_passages_s": t1 - t0, "encode_queries_s": t2 - t1, "search_s": t3 - t2},
        num_queries=len(qids),
        num_passages=len(pids),
    )
