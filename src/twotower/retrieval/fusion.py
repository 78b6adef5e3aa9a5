"""The one home of dense + BM25 fusion: what `twotower search --mode hybrid` serves and what the evaluation's
`hybrid` baseline scores, so the two can never disagree.

Two ways to merge one query's dense top-`depth` list with its BM25 top-`depth` list:

* `weighted` (the default): over the union of both lists,

      s(p) = cos(q, p) + weight · bm25(q, p) / max_p' bm25(q, p')

  where a candidate one retriever did not return gets that retriever's lowest score in its list (a bound on
  what it would have scored; Pyserini's hybrid fusion does the same). Dividing BM25 by the query's best score
  puts it on the cosine's scale whatever the query's length.
* `rrf`, reciprocal rank fusion (Cormack et al. 2009): s(p) = 1 / (k + rank_dense(p)) + weight / (k +
  rank_bm25(p)), ranks from 1, k = 60; a list that misses p adds nothing. `weight` 1 is plain RRF.

Either way the top `n` are ranked by the fused score, ties by the lower key (pid or row), so a ranking never
depends on dictionary order.

    fuse_lists(["a", "b"], [0.9, 0.8], ["b", "c"], [7.0, 3.5], method="weighted", weight=0.2, n=10)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

FUSIONS = ("weighted", "rrf")
RRF_K = 60


def check_fusion(method: str, weight: float) -> None:
    """Raise a `ValueError` naming the setting when `method` or `weight` cannot be used."""
    if method not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {method!r}")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
        raise ValueError(f"the fusion weight must be a number >= 0, got {weight!r}")


def fuse(dense: Mapping[K, float], bm25: Mapping[K, float], weight: float) -> dict[K, float]:
    """{key: cos + weight · bm25 / max bm25} over both candidate lists; a missing score is that list's lowest."""
    dense_floor = min(dense.values(), default=0.0)
    bm25_floor = min(bm25.values(), default=0.0)
    bm25_top = max(bm25.values(), default=0.0)
    scale = weight / bm25_top if bm25_top > 0 else 0.0
    return {p: float(dense.get(p, dense_floor) + scale * bm25.get(p, bm25_floor)) for p in {**dense, **bm25}}


def reciprocal_rank(dense: Sequence[K], bm25: Sequence[K], weight: float = 1.0, k: int = RRF_K) -> dict[K, float]:
    """{key: 1/(k + dense rank) + weight/(k + BM25 rank)}, ranks from 1; a list without the key adds 0."""
    scores: dict[K, float] = {}
    for rank, key in enumerate(dense, start=1):
        scores[key] = 1.0 / (k + rank)
    for rank, key in enumerate(bm25, start=1):
        scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return scores


def top(scores: Mapping[K, float], n: int) -> list[tuple[K, float]]:
    """The `n` best (key, score) pairs, best first, ties by the lower key."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:n]


def fuse_lists(
    dense_keys: Sequence[K],
    dense_scores: Sequence[float],
    bm25_keys: Sequence[K],
    bm25_scores: Sequence[float],
    method: str = "weighted",
    weight: float = 0.2,
    n: int = 10,
) -> list[tuple[K, float]]:
    """One query's fused top `n` (key, score) from each retriever's ranked list (best first)."""
    if method == "rrf":
        scores = reciprocal_rank(dense_keys, bm25_keys, weight)
    elif method == "weighted":
        scores = fuse(dict(zip(dense_keys, dense_scores)), dict(zip(bm25_keys, bm25_scores)), weight)
    else:
        check_fusion(method, weight)
        raise AssertionError(method)  # pragma: no cover - check_fusion raised
    return top(scores, n)
