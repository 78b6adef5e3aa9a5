"""Deep Memory's training data: (query, relevant documents) pairs checked against the store, and their form
for training (`RelevanceData`: query embeddings plus relevant store rows in CSR form, batched by `collate`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from twotower.deep_memory.embeddings import EmbeddingFunction
from twotower.deep_memory.evaluation import top_rows

Relevance = Sequence[Sequence[tuple[str, float]]]
# Half of the validation queries pick the epoch, the other half judge the model: at least 2 each.
MIN_VALIDATION_QUERIES = 4


class Store(Protocol):
    """What deep memory reads of its `VectorStore`."""

    path: Path
    embedding_function: EmbeddingFunction
    dim: int | None
    embeddings: np.ndarray

    def __len__(self) -> int: ...

    def rows_of(self, ids: Sequence[str]) -> tuple[list[int], list[str]]: ...


class UnknownIdsError(KeyError):
    """Relevance pairs name documents that are not in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass
class CheckedRelevance:
    queries: list[str]
    rows: list[list[int]]  # store rows of each query's known documents
    weights: list[list[float]]  # their relevance scores
    n_relevant: list[int]  # documents scored above 0, known or not
    unknown: list[str]  # ids not in the store, sorted


def check_relevance(store: Store, queries: Sequence[str], relevance: Relevance, unknown_ids: str) -> CheckedRelevance:
    """`queries` and `relevance` checked against `store` (ids to rows); raises on bad input."""
    if isinstance(queries, str):
        raise TypeError("queries must be a list of strings, not one string")
    queries, relevance = list(queries), list(relevance)
    if not queries:
        raise ValueError("queries is empty")
    if len(queries) != len(relevance):
        raise ValueError(f"{len(queries)} queries but {len(relevance)} relevance lists: they must pair up")
    for i, q in enumerate(queries):
        if not isinstance(q, str) or not q.strip():
            raise ValueError(f"query {i} is {q!r}: queries must be non-empty strings")
    if unknown_ids not in ("raise", "skip"):
        raise ValueError(f"unknown_ids must be 'raise' or 'skip', got {unknown_ids!r}")
    if len(store) == 0:
        raise ValueError(f"the store at {store.path} holds no documents: add() documents before deep memory")
    out = CheckedRelevance(queries, [], [], [], [])
    for i, pairs in enumerate(relevance):
        if isinstance(pairs, (str, bytes)) or not len(pairs):
            raise ValueError(f"relevance[{i}] must be a non-empty list of (doc_id, score) pairs, got {pairs!r}")
        ids, scores = [], []
        for pair in pairs:
            if isinstance(pair, (str, bytes)) or len(pair) != 2:
                raise ValueError(f"relevance[{i}] holds {pair!r}; each entry must be a (doc_id, score) pair")
            doc_id, score = pair
            number = not isinstance(score, bool) and isinstance(score, (int, float, np.floating, np.integer))
            if not number or math.isnan(float(score)) or not 0 <= float(score) <= 1:
                raise ValueError(f"relevance[{i}]: score {score!r} for {doc_id!r} is not a number in [0, 1]")
            ids.append(str(doc_id))
            scores.append(float(score))
        if max(scores) <= 0:
            raise ValueError(
                f"relevance[{i}] gives every document score 0: query {i} has nothing relevant to learn from"
            )
        rows, missing = store.rows_of(ids)
        out.unknown.extend(missing)
        out.rows.append(rows)
        unknown = set(missing)
        out.weights.append([s for d, s in zip(ids, scores) if d not in unknown])
        out.n_relevant.append(sum(1 for s in scores if s > 0))
    out.unknown = sorted(set(out.unknown))
    if out.unknown and unknown_ids == "raise":
        raise UnknownIdsError(
            f"{len(out.unknown)} document id(s) in relevance are not in the store, e.g. {out.unknown[:5]}; "
            "fix the ids, or pass unknown_ids='skip' to drop those pairs (they are then listed in the job)"
        )
    return out


@dataclass
class RelevanceData:
    """Queries as embeddings plus their relevant documents as store row indices, in CSR form."""

    queries: np.ndarray  # (n, dim) float32, as the embedding function returned them
    offsets: np.ndarray  # (n + 1,) int64: query i's pairs are [offsets[i], offsets[i + 1])
    doc_rows: np.ndarray  # (pairs,) int64 row indices into the store
    weights: np.ndarray  # (pairs,) float32 relevance in [0, 1]

    @classmethod
    def from_lists(cls, queries: np.ndarray, rows: list[list[int]], weights: list[list[float]]) -> RelevanceData:
        return cls(
            queries=queries,
            offsets=np.cumsum([0] + [len(r) for r in rows]).astype(np.int64),
            doc_rows=np.asarray([x for r in rows for x in r], dtype=np.int64),
            weights=np.asarray([x for w in weights for x in w], dtype=np.float32),
        )

    def __len__(self) -> int:
        return len(self.queries)

    def relevant(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.doc_rows[lo:hi], self.weights[lo:hi]

    def subset(self, idx: np.ndarray) -> RelevanceData:
        pairs = [self.relevant(int(i)) for i in idx]
        return RelevanceData.from_lists(
            self.queries[idx], [r.tolist() for r, _ in pairs], [w.tolist() for _, w in pairs]
        )

    def qrels(self) -> list[set[int]]:
        """Per query, the rows that count as relevant when scoring (relevance > 0)."""
        return [set(r[w > 0].tolist()) for r, w in (self.relevant(i) for i in range(len(self)))]

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, queries=self.queries, offsets=self.offsets, doc_rows=self.doc_rows, weights=self.weights)

    @classmethod
    def load(cls, path: str | Path) -> RelevanceData:
        with np.load(path) as z:
            return cls(z["queries"], z["offsets"], z["doc_rows"], z["weights"])


def collate(data: RelevanceData, hard: np.ndarray | None) -> Callable:
    """A DataLoader collate over query indices: (queries, pair query row, pair document, pair weight, negatives)."""

    def collate_batch(batch_idx: list[int]):
        rows, cols, weights = [], [], []
        for r, i in enumerate(batch_idx):
            d, w = data.relevant(i)
            rows.extend([r] * len(d))
            cols.extend(d.tolist())
            weights.extend(w.tolist())
        negatives = torch.from_numpy(hard[batch_idx]) if hard is not None else torch.zeros(0, dtype=torch.long)
        return (
            torch.from_numpy(data.queries[batch_idx]),
            torch.tensor(rows, dtype=torch.long),
            torch.tensor(cols, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float32),
            negatives,
        )

    return collate_batch


def split_sizes(n_queries: int, validation_split: float) -> tuple[int, int]:
    """(train, validation) query counts; raises when too few queries are left for either."""
    n_val = int(round(n_queries * validation_split))
    if n_val < MIN_VALIDATION_QUERIES or n_queries - n_val < 1:
        raise ValueError(
            f"{n_queries} queries with validation_split={validation_split} give {n_val} validation queries; "
            f"deep memory needs at least {MIN_VALIDATION_QUERIES} (to choose the epoch and to check the model "
            "against plain search) and at least one training query"
        )
    return n_queries - n_val, n_val


def mine_hard_negatives(queries: np.ndarray, docs: np.ndarray, data: RelevanceData, k: int) -> np.ndarray:
    """Per query, the `k` top base-ranked stored documents that are not among its relevant ones."""
    top = top_rows(queries, docs, k + int(np.diff(data.offsets).max(initial=0)))
    out = np.empty((len(data), k), dtype=np.int64)
    for i in range(len(data)):
        rel = set(data.relevant(i)[0].tolist())
        out[i] = [d for d in top[i] if d not in rel][:k]
    return out
