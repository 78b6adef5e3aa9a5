"""Query updates: turn Q scored queries into the next queries, and pruning of the queries worth updating.

An update is any callable `update(batch: ScoredQueries) -> NewQueries`. All rules here are vectorised over
queries; invalid result slots (filtered out, NaN score, missing) never contribute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class ScoredQueries:
    """Q queries and their k results: `vectors` (Q, dim), `result_vectors` (Q, k, dim), `result_ids`,
    `scores` and `valid` (Q, k); `root_ids` (Q,) names the starting query each one descends from."""

    vectors: np.ndarray
    result_ids: np.ndarray
    result_vectors: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    root_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)

    def select(self, mask: np.ndarray) -> ScoredQueries:
        """The queries where `mask` is True."""
        return ScoredQueries(
            self.vectors[mask],
            self.result_ids[mask],
            self.result_vectors[mask],
            self.scores[mask],
            self.valid[mask],
            self.root_ids[mask],
        )

    def ranked(self) -> np.ndarray:
        """(Q, k) result positions best first; invalid slots last."""
        return np.argsort(np.where(self.valid, -self.scores, np.inf), axis=1, kind="stable")


@dataclass(frozen=True)
class NewQueries:
    """The next queries: `vectors` (Q', dim) and `parents` (Q',), the row in `ScoredQueries` each came from."""

    vectors: np.ndarray
    parents: np.ndarray


class RLUpdate:
    """Policy-gradient step on each query, one new query per learning rate.

    A_i = (s_i - mean s) / sqrt(var s + 1e-8);  g = 2 mean_i (A_i + distance_penalty)(q - r_i),
    clipped to norm <= max_norm;  q' = q - lr g  (towards above-average results, away from the rest).
    """

    def __init__(
        self, lr: float | Sequence[float] = 0.5, distance_penalty: float = 0.0, max_norm: float | None = None
    ) -> None:
        self.lrs = np.atleast_1d(np.asarray(lr, dtype=np.float64))
        if self.lrs.ndim != 1 or not len(self.lrs):
            raise ValueError(f"lr must be a number or a non-empty list of numbers, got {lr!r}")
        if max_norm is not None and max_norm <= 0:
            raise ValueError(f"max_norm must be positive or None, got {max_norm}")
        self.distance_penalty = distance_penalty
        self.max_norm = max_norm

    def gradient(self, batch: ScoredQueries) -> np.ndarray:
        """(Q, dim) loss gradient g above; queries with no valid result get 0."""
        valid = batch.valid
        n = valid.sum(axis=1, keepdims=True).clip(min=1)
        scores = np.where(valid, batch.scores, 0.0)
        mean = scores.sum(axis=1, keepdims=True) / n
        var = (np.where(valid, scores - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / n
        weights = np.where(valid, (scores - mean) / np.sqrt(var + 1e-8) + self.distance_penalty, 0.0)
        # sum_i w_i (q - r_i) = (sum_i w_i) q - sum_i w_i r_i: no (Q, k, dim) temporary.
        pull = np.einsum("qk,qkd->qd", weights, batch.result_vectors, dtype=np.float64)
        grad = 2.0 * (weights.sum(axis=1, keepdims=True) * batch.vectors - pull) / n
        if self.max_norm is not None:
            norm = np.linalg.norm(grad, axis=1, keepdims=True)
            grad *= np.minimum(1.0, self.max_norm / (norm + 1e-12))
        return grad

    def __call__(self, batch: ScoredQueries) -> NewQueries:
        grad = self.gradient(batch)
        vectors = batch.vectors[None, :, :] - self.lrs[:, None, None] * grad[None, :, :]  # (n_lr, Q, dim)
        parents = np.tile(np.arange(len(batch)), len(self.lrs))
        return NewQueries(vectors.reshape(-1, batch.vectors.shape[1]).astype(np.float32), parents)


class TopKContinuous:
    """Move each query to the mean of its k best results: q' = (1/k) sum_{i in top k} r_i."""

    def __init__(self, k: int = 5) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k

    def __call__(self, batch: ScoredQueries) -> NewQueries:
        top = batch.ranked()[:, : self.k]
        weights = np.take_along_axis(batch.valid, top, axis=1).astype(np.float64)
        vectors = np.take_along_axis(batch.result_vectors, top[:, :, None], axis=1)
        mean = np.einsum("qk,qkd->qd", weights, vectors) / weights.sum(axis=1, keepdims=True).clip(min=1)
        return NewQueries(mean.astype(np.float32), np.arange(len(batch)))


class TopKDiscrete:
    """The k best results of each query become queries themselves: {q'} = {r_i : i in top k}.

    `fresh=True` skips items that already served as a query earlier in this search (so the search keeps
    expanding instead of re-querying the same spot); an item picked by several parents is queried once.
    `max_queries` keeps only that many of the new queries, best scores first (a beam width).
    Call `reset()` before a new search; `Runner.search` does.
    """

    def __init__(self, k: int = 5, fresh: bool = True, max_queries: int | None = None) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if max_queries is not None and max_queries < 1:
            raise ValueError(f"max_queries must be >= 1 or None, got {max_queries}")
        self.k = k
        self.fresh = fresh
        self.max_queries = max_queries
        self._used: set[Any] = set()

    def reset(self) -> None:
        self._used = set()

    def __call__(self, batch: ScoredQueries) -> NewQueries:
        q, k = batch.scores.shape
        # Candidates in order of score over the whole batch, so ties across parents go to the better item.
        flat_order = np.argsort(np.where(batch.valid, -batch.scores, np.inf).ravel(), kind="stable")
        ids = batch.result_ids.tolist()  # plain Python ids: hashable like the ones kept in `_used`
        taken = np.zeros(q, dtype=np.int64)
        picked: list[int] = []
        seen: set[Any] = set()
        for flat in flat_order.tolist():
            row, col = divmod(flat, k)
            if not batch.valid[row, col]:
                break  # invalid slots sort last
            if taken[row] >= self.k:
                continue
            key = ids[row][col]
            if key in seen or (self.fresh and key in self._used):
                continue
            seen.add(key)
            taken[row] += 1
            picked.append(flat)
            if self.max_queries is not None and len(picked) >= self.max_queries:
                break
        self._used |= seen
        rows, cols = np.divmod(np.asarray(picked, dtype=np.int64), k)
        return NewQueries(batch.result_vectors[rows, cols].astype(np.float32), rows)


class TopKPrune:
    """Keep the k best queries by the mean or max score of their valid results, overall (`group_by=None`)
    or per starting query (`group_by="root"`)."""

    def __init__(self, k: int, agg: Literal["mean", "max"] = "max", group_by: Literal["root"] | None = None) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if agg not in ("mean", "max"):
            raise ValueError(f"agg must be 'mean' or 'max', got {agg!r}")
        if group_by not in (None, "root"):
            raise ValueError(f"group_by must be None or 'root', got {group_by!r}")
        self.k = k
        self.agg = agg
        self.group_by = group_by

    def query_scores(self, batch: ScoredQueries) -> np.ndarray:
        """(Q,) aggregate score per query; -inf for a query with no valid result."""
        if self.agg == "max":
            value = np.where(batch.valid, batch.scores, -np.inf).max(axis=1)
        else:
            n = batch.valid.sum(axis=1)
            value = np.where(batch.valid, batch.scores, 0.0).sum(axis=1) / np.maximum(n, 1)
            value[n == 0] = -np.inf
        return value

    def __call__(self, batch: ScoredQueries) -> np.ndarray:
        """(Q,) bool: True for the queries to keep."""
        value = self.query_scores(batch)
        groups = np.zeros(len(batch), dtype=np.int64) if self.group_by is None else batch.root_ids
        keep = np.zeros(len(batch), dtype=bool)
        order = np.lexsort((-value, groups))  # by group, best first within the group
        rank_in_group = np.empty(len(batch), dtype=np.int64)
        sorted_groups = groups[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
        rank_in_group[order] = np.arange(len(batch)) - np.repeat(starts, np.diff(np.r_[starts, len(batch)]))
        keep[:] = (rank_in_group < self.k) & np.isfinite(value)
        return keep
