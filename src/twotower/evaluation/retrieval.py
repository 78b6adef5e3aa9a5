"""Retrieval evaluation in bounded memory: encode the corpus a chunk at a time, keep a running top-k per query.

The training callback and `evaluate.py` both call `evaluate_encoder`, so their numbers are the same.

* Full corpus (default): each chunk of `chunk_size` passages is encoded, searched exactly (`faiss.knn`,
  inner product) and merged into the per-query top-k; memory is one chunk's vectors, never the corpus'.
* Candidates (`candidates={qid: [pid, ...]}`, e.g. BM25 top-1000): each query is scored only against its own
  candidates, a cheap per-epoch check. Candidates not in the corpus are ignored.
* Sharded (`world_size > 1`): rank r encodes chunks r, r + world_size, ...; the per-rank top-k lists are
  merged through `all_gather` (Lightning's `trainer.strategy.all_gather`, or `dist_all_gather` for plain
  torch.distributed), so every rank returns the same ranking, and the metric sums sync through torchmetrics.

Ties are broken by corpus row (lower first), so a ranking does not depend on the chunking or the rank count.
Metrics come from `metrics.per_query_metrics` (the one metrics home; every judged query counts, recall
divides by all relevant passages of the qrels, retrieved or not), accumulated in a torchmetrics `Metric`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torchmetrics

from twotower.data.dict_corpus import as_corpus
from twotower.data.msmarco import Qrels, Split
from twotower.evaluation.metrics import METRIC_NAMES, per_query_metrics
from twotower.evaluation.sharding import AllGather, gather_top_k, gathered, top_k
from twotower.retrieval.corpus_like import CorpusLike
from twotower.retrieval.exact import exact_search

CHUNK = 65_536  # passages encoded and searched at a time: ~65 MB of 256-d vectors


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


class RankingMetrics(torchmetrics.Metric):
    """Sums of every metric in METRIC_NAMES over the queries seen, and their count; `compute` gives the means.

    States are sums, so ranks that each scored a share of the queries sync to the all-query means.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sums", default=torch.zeros(len(METRIC_NAMES), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, ranking: Mapping[str, list[str]], qrels: Qrels) -> None:
        if not any(any(r > 0 for r in judged.values()) for judged in qrels.values()):
            return  # a rank whose share holds no judged query adds nothing
        qids, values = per_query_metrics(ranking, qrels)
        self.sums += torch.tensor([values[name].sum() for name in METRIC_NAMES], dtype=torch.float64)
        self.count += len(qids)

    def compute(self) -> dict[str, float]:
        if not self.count:
            raise ValueError("no judged query was scored: nothing to evaluate")
        return {name: float(total / self.count) for name, total in zip(METRIC_NAMES, self.sums)}


def evaluate_encoder(
    encoder,
    split: Split,
    max_queries: int | None = None,
    k: int = 100,
    progress: bool = False,
    doc_vectors: np.ndarray | None = None,
    chunk_size: int = CHUNK,
    rank: int = 0,
    world_size: int = 1,
    all_gather: AllGather | None = None,
    candidates: Mapping[str, list[str]] | None = None,
) -> EvalResult:
    """Retrieve the top `k` for each judged query (of the whole collection, or of its `candidates`) and score it.

    `encoder` has `encode_queries(texts)` and `encode_documents(texts, progress=...)` returning float32 unit
    rows; `split.collection` is a {pid: text} dict or a Corpus/DictCorpus; `doc_vectors` (rows in corpus
    order, may be a memmap) skips the passage encode.
    """
    if world_size > 1 and all_gather is None:
        raise ValueError(f"world_size={world_size} needs all_gather (e.g. trainer.strategy.all_gather)")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    qids = judged_queries(split, max_queries)
    corpus = as_corpus(split.collection)
    if doc_vectors is not None and len(doc_vectors) != len(corpus):
        raise ValueError(f"doc_vectors has {len(doc_vectors)} rows for a corpus of {len(corpus)} passages")
    t0 = time.perf_counter()
    query_vectors = np.ascontiguousarray(encoder.encode_queries([split.queries[q] for q in qids]), dtype=np.float32)
    t1 = time.perf_counter()
    shard = (rank, world_size)
    if candidates is None:
        scores, rows, encode_s = _search_corpus(
            encoder, corpus, query_vectors, k, chunk_size, shard, doc_vectors, progress
        )
    else:
        scores, rows, encode_s = _search_candidates(
            encoder,
            corpus,
            [candidates.get(q, []) for q in qids],
            query_vectors,
            k,
            chunk_size,
            shard,
            doc_vectors,
            progress,
        )
    # Collectives run where the process group lives (NCCL gathers CUDA tensors only): the encoder's device.
    device = torch.device(getattr(encoder, "device", None) or "cpu")
    if world_size > 1:
        scores, rows = gather_top_k(scores, rows, k, all_gather, device)
    t2 = time.perf_counter()
    ranking, ranked_scores = _to_pids(corpus, qids, scores, rows)
    metric = RankingMetrics(
        distributed_available_fn=lambda: world_size > 1,
        dist_sync_fn=lambda t, group=None: list(gathered(all_gather, t)),
    ).to(device)
    share = qids[rank::world_size]  # every rank holds the whole ranking: each scores a share, then they sync
    metric.update({q: ranking[q] for q in share}, {q: split.qrels[q] for q in share})
    return EvalResult(
        metrics=metric.compute(),
        ranking=ranking,
        scores=ranked_scores,
        timings={"encode_passages_s": encode_s, "encode_queries_s": t1 - t0, "search_s": t2 - t1 - encode_s},
        num_queries=len(qids),
        num_passages=len(corpus),
    )


def _chunks(n: int, chunk_size: int, shard: tuple[int, int]) -> list[tuple[int, int]]:
    """This rank's [start, stop) chunks: chunk c belongs to rank c % world_size."""
    rank, world = shard
    return [(s, min(s + chunk_size, n)) for c, s in enumerate(range(0, n, chunk_size)) if c % world == rank]


def _scan(corpus: CorpusLike, chunk_size: int, shard: tuple[int, int], with_text: bool):
    """(start, stop, texts or None) of this rank's chunks, in corpus order. Texts come from `iter_batches`,
    a sequential read: random access through the memory map would leave the whole corpus in this RSS."""
    if not with_text:
        yield from ((start, stop, None) for start, stop in _chunks(len(corpus), chunk_size, shard))
        return
    start = 0
    for c, (_, texts) in enumerate(corpus.iter_batches(chunk_size)):
        if c % shard[1] == shard[0]:
            yield start, start + len(texts), texts
        start += len(texts)


def _encode(encoder, corpus: CorpusLike, rows: np.ndarray, doc_vectors: np.ndarray | None) -> np.ndarray:
    if doc_vectors is not None:
        return np.ascontiguousarray(doc_vectors[rows], dtype=np.float32)
    return np.ascontiguousarray(encoder.encode_documents(corpus.text_at(rows), progress=False), dtype=np.float32)


def _search_corpus(
    encoder,
    corpus: CorpusLike,
    queries: np.ndarray,
    k: int,
    chunk_size: int,
    shard: tuple[int, int],
    doc_vectors: np.ndarray | None,
    progress: bool,
):
    """This rank's top-k over its chunks of the corpus: (scores (nq, k), rows (nq, k), seconds encoding)."""
    from rich.progress import Progress

    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.full((len(queries), k), -1, dtype=np.int64)
    encode_s = 0.0
    chunks = _chunks(len(corpus), chunk_size, shard)
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("evaluating: encoding and searching passages", total=sum(b - a for a, b in chunks))
        for start, stop, texts in _scan(corpus, chunk_size, shard, with_text=doc_vectors is None):
            t = time.perf_counter()
            if doc_vectors is None:
                vectors = np.ascontiguousarray(encoder.encode_documents(texts, progress=False), dtype=np.float32)
            else:
                vectors = np.ascontiguousarray(doc_vectors[start:stop], dtype=np.float32)
            encode_s += time.perf_counter() - t
            if len(queries):
                found_scores, found = exact_search(vectors, queries, k)
                best_scores, best_rows = top_k(
                    np.hstack([best_scores, found_scores]),
                    np.hstack([best_rows, np.where(found >= 0, found + start, -1)]),
                    k,
                )
            bar.advance(task, stop - start)
    return best_scores, best_rows, encode_s


def _search_candidates(
    encoder,
    corpus: CorpusLike,
    lists: list[list[str]],
    queries: np.ndarray,
    k: int,
    chunk_size: int,
    shard: tuple[int, int],
    doc_vectors: np.ndarray | None,
    progress: bool,
):
    """This rank's top-k of each query's own candidates: the union of all candidates is encoded in chunks."""
    from rich.progress import Progress

    width = max((len(c) for c in lists), default=0)
    cand_rows = np.full((len(lists), width), -1, dtype=np.int64)
    for i, pids in enumerate(lists):
        found = corpus.find(list(dict.fromkeys(pids)))  # a pid listed twice is one candidate
        found = found[found >= 0]
        cand_rows[i, : len(found)] = found
    cand_scores = np.full(cand_rows.shape, -np.inf, dtype=np.float32)
    valid = cand_rows >= 0
    unique, inverse = np.unique(cand_rows[valid], return_inverse=True)
    q_of = np.nonzero(valid)[0]
    slot = np.zeros(len(unique), dtype=np.int64)  # unique index -> row of this chunk's vectors
    flat_scores = np.full(len(q_of), -np.inf, dtype=np.float32)
    encode_s = 0.0
    chunks = _chunks(len(unique), chunk_size, shard)
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("evaluating: encoding candidates", total=sum(b - a for a, b in chunks))
        for start, stop in chunks:
            t = time.perf_counter()
            vectors = _encode(encoder, corpus, unique[start:stop], doc_vectors)
            encode_s += time.perf_counter() - t
            mine = (inverse >= start) & (inverse < stop)
            slot[start:stop] = np.arange(stop - start)
            pairs = np.flatnonzero(mine)
            flat_scores[pairs] = np.einsum("ij,ij->i", queries[q_of[pairs]], vectors[slot[inverse[pairs]]])
            bar.advance(task, stop - start)
    cand_scores[valid] = flat_scores
    cand_rows = np.where(np.isfinite(cand_scores), cand_rows, -1)  # another rank's candidates: not ours to rank
    return (*top_k(cand_scores, cand_rows, k), encode_s)


def _to_pids(corpus: CorpusLike, qids: list[str], scores: np.ndarray, rows: np.ndarray):
    keep = rows >= 0
    flat = corpus.pids_at(rows[keep])
    ranking: dict[str, list[str]] = {}
    ranked_scores: dict[str, list[float]] = {}
    at = 0
    for q, row_keep, row_scores in zip(qids, keep, scores):
        n = int(row_keep.sum())
        ranking[q] = flat[at : at + n]
        ranked_scores[q] = row_scores[row_keep].tolist()
        at += n
    return ranking, ranked_scores
