"""The search loop: query the index, filter, score, log, prune, update; repeat."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from twotower.emb_opt.filters import Filter, check_mask
from twotower.emb_opt.items import Items
from twotower.emb_opt.log import SearchLog
from twotower.emb_opt.score import Score, as_score
from twotower.emb_opt.updates import NewQueries, ScoredQueries
from twotower.emb_opt.vector_db import VectorDB, check_query_vectors


@dataclass
class _Step:
    """What one iteration of `Runner.step` has found so far (filled in by its named steps, in order)."""

    queries: Queries
    times: list[float] = field(default_factory=list)  # start, after retrieve, filter, score, prune
    found: Any = None
    slot_q: np.ndarray | None = None
    slot_rank: np.ndarray | None = None
    items: Items | None = None
    passed: np.ndarray | None = None
    scores: np.ndarray | None = None
    valid: np.ndarray | None = None
    calls_before: int = 0
    grid_scores: np.ndarray | None = None
    grid_valid: np.ndarray | None = None
    n_valid: np.ndarray | None = None
    live: np.ndarray | None = None
    batch: ScoredQueries | None = None
    keep: np.ndarray | None = None


class SearchInterrupted(RuntimeError):
    """A step failed (the score, filter or update raised); `log` holds every iteration completed before."""

    def __init__(self, message: str, log: SearchLog) -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Queries:
    """The live queries between steps: `vectors` (Q, dim), their ids, parents (-1 at the start) and roots."""

    vectors: np.ndarray
    ids: np.ndarray
    parent_ids: np.ndarray
    root_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


class Runner:
    """Steers query vectors through `vector_db` towards items that `score` rates high.

    Each step retrieves the `k` nearest items per query, drops those `filter` rejects, scores the rest
    (each item at most once, see `Score`), logs everything, keeps the queries `prune` selects among those
    with a valid result, and lets `query_update` make the next queries from them.
    """

    def __init__(
        self,
        vector_db: VectorDB,
        score: Score | Callable[[Items], Any],
        query_update: Callable[[ScoredQueries], NewQueries],
        filter: Filter | None = None,
        prune: Callable[[ScoredQueries], np.ndarray] | None = None,
        k: int = 10,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.vector_db = vector_db
        self.score = as_score(score)
        self.query_update = query_update
        self.filter = filter
        self.prune = prune
        self.k = k

    def start(self, query_vectors: np.ndarray, log: SearchLog) -> Queries:
        """Starting queries from a (Q, dim) array, with fresh ids in `log`."""
        vectors = check_query_vectors(query_vectors, self.vector_db.dim)
        if not len(vectors):
            raise ValueError("query_vectors is empty: give at least one starting query")
        ids = log.new_query_ids(len(vectors))
        return Queries(vectors, ids, np.full(len(ids), -1, dtype=np.int64), ids.copy())

    def step(self, queries: Queries, log: SearchLog) -> Queries | None:
        """One iteration; returns the next queries, or None when the search cannot go on. Its named steps:
        retrieve, filter and score the results, regroup them per query and prune, log, update."""
        t = _Step(queries, times=[time.perf_counter()])
        self._retrieve(t)
        self._filter_and_score(t)
        self._regroup_and_prune(t)
        self._log_step(t, log)  # before the update runs, so a failing update cannot lose this iteration
        if not t.keep.any():
            log.stop_reason = "no query has valid results left" if not t.live.any() else "prune kept no query"
            log.annotate_last_step(time_update=0.0, time_total=t.times[-1] - t.times[0])
            return None
        return self._update(t, log)

    def _retrieve(self, t: _Step) -> None:
        """The top `k` of every query, flattened to the list of valid (query, rank) slots."""
        found = t.found = self.vector_db.query(t.queries.vectors, self.k)
        t.slot_q, t.slot_rank = np.nonzero(found.valid)
        at = (t.slot_q, t.slot_rank)
        t.items = Items(
            ids=found.ids[at],
            vectors=found.vectors[at],
            fields={name: values[at] for name, values in found.fields.items()},
            distances=found.distances[at],
        )
        t.times.append(time.perf_counter())

    def _filter_and_score(self, t: _Step) -> None:
        """The filter's verdict, then the black-box score of what passed (NaN elsewhere)."""
        n = len(t.items)
        t.passed = np.ones(n, dtype=bool) if self.filter is None else check_mask(self.filter(t.items), n)
        t.times.append(time.perf_counter())
        t.calls_before = self.score.calls
        t.scores = np.full(n, np.nan)
        if t.passed.any():
            t.scores[t.passed] = self.score(t.items.select(t.passed))
        t.valid = t.passed & np.isfinite(t.scores)
        t.times.append(time.perf_counter())

    def _regroup_and_prune(self, t: _Step) -> None:
        """Back to the (Q, k) grid the updates work on (invalid slots stay NaN / False); queries with no valid
        result drop out, and the prune callable may drop more."""
        shape = t.found.valid.shape
        t.grid_scores = np.full(shape, np.nan)
        t.grid_scores[t.slot_q, t.slot_rank] = t.scores
        t.grid_valid = np.zeros(shape, dtype=bool)
        t.grid_valid[t.slot_q, t.slot_rank] = t.valid
        t.n_valid = t.grid_valid.sum(axis=1)
        t.live = t.n_valid > 0
        found, queries = t.found, t.queries
        t.batch = ScoredQueries(
            queries.vectors, found.ids, found.vectors, t.grid_scores, t.grid_valid, queries.root_ids
        ).select(t.live)
        t.keep = (
            np.ones(len(t.batch), dtype=bool)
            if self.prune is None or not len(t.batch)
            else np.asarray(self.prune(t.batch), dtype=bool)
        )
        t.times.append(time.perf_counter())

    def _log_step(self, t: _Step, log: SearchLog) -> None:
        queries, items, live, n_valid = t.queries, t.items, t.live, t.n_valid
        scores, valid = t.scores, t.valid
        t0, t1, t2, t3 = t.times[:4]
        log.add_step(
            queries={
                "query_id": queries.ids,
                "parent_id": queries.parent_ids,
                "root_id": queries.root_ids,
                "vector": queries.vectors,
                "n_valid": n_valid,
                "mean_score": np.where(
                    live, np.where(t.grid_valid, t.grid_scores, 0.0).sum(axis=1) / np.maximum(n_valid, 1), np.nan
                ),
                "max_score": np.where(
                    live, np.where(t.grid_valid, t.grid_scores, -np.inf).max(axis=1, initial=-np.inf), np.nan
                ),
            },
            results={
                "query_id": queries.ids[t.slot_q],
                "rank": t.slot_rank,
                "item_id": items.ids,
                "distance": items.distances,
                "passed_filter": t.passed,
                "score": scores,
                "valid": valid,
            },
            items={"item_id": items.ids, "vector": items.vectors, **items.fields},
            stats={
                "queries": len(queries),
                "live_queries": int(live.sum()),
                "kept_queries": int(t.keep.sum()),
                "results": len(items),
                "passed_filter": int(t.passed.sum()),
                "valid": int(valid.sum()),
                "calls": self.score.calls - t.calls_before,
                "calls_total": self.score.calls,
                "step_best": float(scores[valid].max()) if valid.any() else np.nan,
                "time_query": t1 - t0,
                "time_filter": t2 - t1,
                "time_score": t3 - t2,
            },
        )

    def _update(self, t: _Step, log: SearchLog) -> Queries | None:
        """The query update over the kept queries; its children remember their parent and root."""
        new = self.query_update(t.batch.select(t.keep))
        vectors = check_query_vectors(new.vectors, self.vector_db.dim, name="query_update output")
        parents = np.flatnonzero(t.live)[t.keep][np.asarray(new.parents, dtype=np.int64)]
        t5 = time.perf_counter()
        log.annotate_last_step(time_update=t5 - t.times[-1], time_total=t5 - t.times[0])
        if not len(vectors):
            log.stop_reason = "the update produced no new queries"
            return None
        queries = t.queries
        return Queries(vectors, log.new_query_ids(len(vectors)), queries.ids[parents], queries.root_ids[parents])

    def search(
        self,
        query_vectors: np.ndarray,
        iterations: int,
        log: SearchLog | None = None,
        max_calls: int | None = None,
        progress: bool = False,
        on_error: Literal["raise", "stop"] = "raise",
    ) -> SearchLog:
        """Run up to `iterations` steps from `query_vectors` (Q, dim) and return the log.

        Stops early when no query has a valid result left, when the update makes no queries, or before a
        step once `max_calls` score calls were made in this search. If a step raises, `on_error="raise"`
        raises `SearchInterrupted` carrying the log of the completed iterations; `"stop"` returns that log with
        `stop_reason` naming the error.
        """
        if not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
        if on_error not in ("raise", "stop"):
            raise ValueError(f"on_error must be 'raise' or 'stop', got {on_error!r}")
        check_max_calls(max_calls)
        if len(self.vector_db) == 0:
            raise ValueError("vector_db is empty (0 vectors): nothing to search")
        log = SearchLog(self.vector_db.dim) if log is None else log
        queries = self.start(query_vectors, log)
        if iterations == 0:
            log.stop_reason = "iterations=0"
            return log
        reset = getattr(self.query_update, "reset", None)
        if callable(reset):
            reset()
        calls_at_start = self.score.calls
        log.stop_reason = f"ran {iterations} iterations"

        best = -np.inf
        bar = _progress(progress, iterations)
        with bar:
            task = bar.add_task("emb-opt", total=iterations, calls=0, best=float("nan"))
            for _ in range(iterations):
                if max_calls is not None and self.score.calls - calls_at_start >= max_calls:
                    log.stop_reason = f"reached max_calls={max_calls}"
                    break
                try:
                    queries = self.step(queries, log)
                except Exception as err:
                    log.stop_reason = f"error: {type(err).__name__}: {err}"
                    if on_error == "raise":
                        raise SearchInterrupted(
                            f"search stopped after {log.iterations} iterations: {log.stop_reason}", log
                        ) from err
                    break
                best = np.fmax(best, log.steps_list[-1]["step_best"])
                bar.update(task, advance=1, calls=self.score.calls - calls_at_start, best=best)
                if queries is None:
                    break
        return log


def check_max_calls(max_calls: Any) -> None:
    """`max_calls` is None (no cap) or a whole number >= 1; a negative or zero budget would stop before any
    score call and return an empty search as if it had run."""
    if max_calls is None:
        return
    if isinstance(max_calls, bool) or not isinstance(max_calls, (int, np.integer)) or max_calls < 1:
        raise ValueError(f"max_calls must be a whole number >= 1, or null for no cap; got {max_calls!r}")


def _progress(enabled: bool, total: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("calls {task.fields[calls]:,}  best {task.fields[best]:.4g}"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )
