"""Hybrid retrieval baseline: a dense bi-encoder and BM25 fused per query, the usual dense-sparse hybrid.

For a query q, candidates are the union of each retriever's top `depth`; each is scored

    s(q, p) = cos(q, p) + weight · bm25(q, p) / max_p' bm25(q, p')

by `twotower.retrieval.fusion`, the fusion `twotower search --mode hybrid` serves too (the maths and how a
candidate one retriever missed is scored are documented there). The weight is chosen on *training* queries (see
`bench/bench_headroom.py`), never on the dev set it is reported on.

It is a baseline, and a yardstick: the fused ranking is the strongest signal available offline here (MiniLM
alone: 0.531 dev MRR@10), so it bounds what distilling "MiniLM + BM25" into a tower could teach.

    HybridBaseline(DenseBaseline("minilm"), weight=0.2).evaluate(passage_split("dev")).metrics["mrr@10"]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twotower.data.msmarco import Split
from twotower.evaluation.baselines import Baseline, BM25Baseline, DenseBaseline, Retrieved
from twotower.retrieval.fusion import fuse, fuse_lists

__all__ = ["HybridBaseline", "fuse", "fused_rankings"]


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


def fused_rankings(
    dense: Retrieved, bm25: Retrieved, weight: float, k: int, method: str = "weighted"
) -> tuple[dict, dict]:
    """Each query's top `k` by the fused score (`twotower.retrieval.fusion`, ties: the lower pid), from the two
    retrievers' results; one retrieval serves any number of weights (`bench/bench_headroom.py`)."""
    ranking, scores = {}, {}
    for q in dense[0]:
        fused = fuse_lists(dense[0][q], dense[1][q], bm25[0][q], bm25[1][q], method, weight, k)
        ranking[q], scores[q] = [p for p, _ in fused], [s for _, s in fused]
    return ranking, scores
