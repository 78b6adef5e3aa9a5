"""Hybrid retrieval baseline: a dense bi-encoder and BM25 fused per query, the usual dense-sparse hybrid.

For a query q, candidates are the union of each retriever's top `depth`; each is scored

    s(q, p) = cos(q, p) + weight · bm25(q, p) / max_p' bm25(q, p')

where a candidate one retriever did not return gets that retriever's lowest score in its top `depth` (a bound on
what it would have scored; Pyserini's hybrid fusion does the same). Dividing BM25 by the query's best score puts
it on the cosine's scale whatever the query's length. The weight is chosen on *training* queries (see
`bench/bench_headroom.py`), never on the dev set it is reported on.

It is a baseline, and a yardstick: the fused ranking is the strongest signal available offline here (MiniLM
alone: 0.531 dev MRR@10), so it bounds what distilling "MiniLM + BM25" into a tower could teach.

    HybridBaseline(DenseBaseline("minilm"), weight=0.2).evaluate(passage_split("dev")).metrics["mrr@10"]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twotower.data.msmarco import Split
from twotower.evaluation.baselines import Baseline, BM25Baseline, DenseBaseline, Retrieved


@dataclass(frozen=True)
class HybridBaseline(Baseline):
    """`dense` + `weight` · max-normalised BM25 over the union of both top-`depth` lists (module docstring)."""

    dense: DenseBaseline = field(default_factory=DenseBaseline)
    weight: float = 0.2
    depth: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float) or self.weight < 0:
            raise ValueError(f"baselines.hybrid.weight must be a number >= 0, got {self.weight!r}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"baselines.hybrid.depth must be a whole number >= 1, got {self.depth!r}")

    def retrieve(self, split: Split, pids: list[str], qids: list[str], k: int, progress: bool) -> Retrieved:
        depth = min(max(self.depth, k), len(pids))
        dense = self.dense.retrieve(split, pids, qids, depth, progress)
        bm25 = BM25Baseline().retrieve(split, pids, qids, depth, progress)
        ranking, scores = fused_rankings(dense, bm25, self.weight, k)
        timings = {name: dense[2].get(name, 0.0) + bm25[2].get(name, 0.0) for name in set(dense[2]) | set(bm25[2])}
        return ranking, scores, timings


def fuse(dense: dict[str, float], bm25: dict[str, float], weight: float) -> dict[str, float]:
    """{pid: cos + weight · bm25 / max bm25} over both candidate lists; a missing score is that list's lowest."""
    dense_floor = min(dense.values(), default=0.0)
    bm25_floor = min(bm25.values(), default=0.0)
    bm25_top = max(bm25.values(), default=0.0)
    scale = weight / bm25_top if bm25_top > 0 else 0.0
    return {p: float(dense.get(p, dense_floor) + scale * bm25.get(p, bm25_floor)) for p in {**dense, **bm25}}


def fused_rankings(dense: Retrieved, bm25: Retrieved, weight: float, k: int) -> tuple[dict, dict]:
    """Each query's top `k` by the fused score (ties: the lower pid), from the two retrievers' results; one
    retrieval serves any number of weights (`bench/bench_headroom.py`)."""
    ranking, scores = {}, {}
    for q in dense[0]:
        fused = fuse(dict(zip(dense[0][q], dense[1][q])), dict(zip(bm25[0][q], bm25[1][q])), weight)
        top = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
        ranking[q], scores[q] = [p for p, _ in top], [s for _, s in top]
    return ranking, scores
