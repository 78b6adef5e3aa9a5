"""The search log: every query, every retrieved item and its score, per iteration; save, load, compile.

Stored column-wise (numpy per step, pandas when compiled). On disk a log is a folder of Parquet files
(`queries`, `results`, `items`, `steps`) plus `meta.json`, written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from twotower.io.atomic import atomic_path

LOG_VERSION = 1
COLUMNS = {
    "queries": ("iteration", "query_id", "parent_id", "root_id", "vector", "n_valid", "mean_score", "max_score"),
    "results": ("iteration", "query_id", "rank", "item_id", "distance", "passed_filter", "score", "valid"),
    "items": ("iteration", "item_id", "vector"),
}


@dataclass(frozen=True)
class Trajectory:
    """One lineage of queries, from a starting query to a leaf: `vectors` (T, dim) and per-iteration
    `mean_scores`/`max_scores` (T,) over each query's valid results (NaN where it had none)."""

    query_ids: np.ndarray
    iterations: np.ndarray
    vectors: np.ndarray
    mean_scores: np.ndarray
    max_scores: np.ndarray

    @property
    def root_id(self) -> int:
        return int(self.query_ids[0])


class SearchLog:
    """What a search did. Tables (pandas): `queries` (one row per query per iteration), `results` (one row
    per retrieved item per query), `items` (vector and stored fields per distinct item), `steps` (per
    iteration counts and timings). `stop_reason` says why the search ended."""

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.stop_reason: str | None = None
        self.next_query_id = 0
        # Column chunks per table (one per iteration, or one per table after `load`): cheap appends.
        self._chunks: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in COLUMNS}
        self._steps: list[dict[str, Any]] = []
        self._frames: dict[str, pd.DataFrame] = {}

    # ---- writing (the runner) -------------------------------------------------------------------------

    def new_query_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self.next_query_id, self.next_query_id + n, dtype=np.int64)
        self.next_query_id += n
        return ids

    @property
    def iterations(self) -> int:
        return len(self._steps)

    def add_step(
        self,
        queries: dict[str, np.ndarray],
        results: dict[str, np.ndarray],
        items: dict[str, Any],
        stats: dict[str, Any],
    ) -> None:
        """Append one iteration. `queries`: query_id, parent_id, root_id, vector (Q, dim), n_valid,
        mean_score, max_score. `results`: query_id, rank, item_id, distance, passed_filter, score, valid.
        `items`: item_id, vector, and stored fields of the retrieved items. `stats`: scalars."""
        iteration = self.iterations
        for name, chunk in (("queries", queries), ("results", results), ("items", items)):
            n = len(chunk["item_id" if name != "queries" else "query_id"])
            self._chunks[name].append({"iteration": np.full(n, iteration, dtype=np.int64), **chunk})
        self._steps.append({"iteration": iteration, **stats})
        self._frames.clear()

    def annotate_last_step(self, **values: Any) -> None:
        """Add scalars (e.g. timings known only after the update) to the last iteration's stats."""
        self._steps[-1].update(values)

    @property
    def steps_list(self) -> list[dict[str, Any]]:
        """Per-iteration stats as plain dicts (cheap; `steps` builds a DataFrame)."""
        return self._steps

    # ---- tables -----------------------------------------------------------------------------------------

    def _frame(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            self._frames[name] = _concat(self._chunks[name], COLUMNS[name])
        return self._frames[name]

    @property
    def queries(self) -> pd.DataFrame:
        return self._frame("queries")

    @property
    def results(self) -> pd.DataFrame:
        return self._frame("results")

    @property
    def items(self) -> pd.DataFrame:
        """One row per distinct item retrieved (first sighting): item_id, iteration, vector, fields."""
        frame = self._frame("items")
        return frame.drop_duplicates("item_id", keep="first").reset_index(drop=True)

    @property
    def steps(self) -> pd.DataFrame:
        return pd.DataFrame(self._steps, columns=None if self._steps else ["iteration"])

    # ---- compiled views ---------------------------------------------------------------------------------

    def compile_results(
        self,
        include_invalid: bool = False,
        vectors: bool = False,
        format: Literal["pandas", "arrow"] = "pandas",
    ) -> Any:
        """Every item seen, once, best score first: item_id, score, iteration (first seen), query_id (first
        retrieving query), distance (closest), hits (times retrieved), stored fields, and `vector` if asked.
        Items filtered out or with a NaN score are left out unless `include_invalid`."""
        results = self.results
        if not include_invalid:
            results = results[results["valid"]]
        first = results.drop_duplicates("item_id", keep="first")
        table = pd.DataFrame(
            {
                "item_id": first["item_id"].to_numpy(),
                "score": first["score"].to_numpy(),
                "valid": first["valid"].to_numpy(),
                "iteration": first["iteration"].to_numpy(),
                "query_id": first["query_id"].to_numpy(),
            }
        )
        grouped = results.groupby("item_id", sort=False)
        table["distance"] = table["item_id"].map(grouped["distance"].min())
        table["hits"] = table["item_id"].map(grouped.size()).astype(np.int64)
        items = self.items
        extra = [c for c in items.columns if c not in ("item_id", "iteration") and (vectors or c != "vector")]
        if extra:
            table = table.merge(items[["item_id", *extra]], on="item_id", how="left")
        table = table.sort_values("score", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
        if format == "arrow":
            import pyarrow as pa

            return pa.Table.from_pandas(table, preserve_index=False)
        return table

    def compile_trajectories(self) -> list[Trajectory]:
        """One trajectory per leaf query (a query no later query descends from), traced back to its start.
        With continuous updates (one child per query) that is one trajectory per starting query."""
        queries = self.queries
        if queries.empty:
            return []
        row_of = {qid: i for i, qid in enumerate(queries["query_id"].tolist())}
        parents = queries["parent_id"].to_numpy()
        has_child = set(parents[parents >= 0].tolist())
        vectors = np.stack(queries["vector"].to_numpy()) if len(queries) else np.zeros((0, self.dim))
        trajectories = []
        for row, qid in enumerate(queries["query_id"].tolist()):
            if qid in has_child:
                continue
            chain = [row]
            while parents[chain[-1]] >= 0:
                chain.append(row_of[int(parents[chain[-1]])])
            chain.reverse()
            trajectories.append(
                Trajectory(
                    query_ids=queries["query_id"].to_numpy()[chain],
                    iterations=queries["iteration"].to_numpy()[chain],
                    vectors=vectors[chain],
                    mean_scores=queries["mean_score"].to_numpy()[chain],
                    max_scores=queries["max_score"].to_numpy()[chain],
                )
            )
        return trajectories

    def best_so_far(self) -> pd.DataFrame:
        """Per iteration: score calls so far and the best score found so far."""
        steps = self.steps
        if steps.empty:
            return pd.DataFrame({"iteration": [], "calls": [], "best_score": []})
        best = steps["step_best"].astype(float).fillna(-np.inf).cummax().replace(-np.inf, np.nan)
        return pd.DataFrame({"iteration": steps["iteration"], "calls": steps["calls_total"], "best_score": best})

    # ---- persistence ------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the log as a folder (atomically replacing an older one at `path`)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.mkdir()
            for name, frame in (("queries", self.queries), ("results", self.results), ("items", self.items)):
                pq.write_table(_to_arrow(frame, self.dim), tmp / f"{name}.parquet")
            pq.write_table(pa.Table.from_pandas(self.steps, preserve_index=False), tmp / "steps.parquet")
            meta = {
                "version": LOG_VERSION,
                "dim": self.dim,
                "stop_reason": self.stop_reason,
                "next_query_id": self.next_query_id,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SearchLog:
        import pyarrow.parquet as pq

        path = Path(path)
        if not (path / "meta.json").exists():
            raise FileNotFoundError(f"{path} is not a saved SearchLog (no meta.json)")
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("version") != LOG_VERSION:
            raise ValueError(f"{path}: log version {meta.get('version')}, this code reads version {LOG_VERSION}")
        log = cls(meta["dim"])
        log.stop_reason = meta["stop_reason"]
        log.next_query_id = meta["next_query_id"]
        for name in COLUMNS:
            log._chunks[name].append(_from_arrow(pq.read_table(path / f"{name}.parquet")))
        log._steps = pq.read_table(path / "steps.parquet").to_pandas().to_dict("records")
        return log


def _concat(chunks: list[dict[str, np.ndarray]], columns: tuple[str, ...]) -> pd.DataFrame:
    if not chunks:
        return pd.DataFrame({c: pd.Series(dtype=bool if c in ("valid", "passed_filter") else object) for c in columns})
    frame = {}
    for key in chunks[0]:
        values = np.concatenate([chunk[key] for chunk in chunks])
        frame[key] = list(values) if key == "vector" else values  # a (dim,) array per row
    return pd.DataFrame(frame)


def _to_arrow(frame: pd.DataFrame, dim: int) -> Any:
    import pyarrow as pa

    columns = {}
    for column in frame.columns:
        if column == "vector":
            flat = (
                np.concatenate(frame[column].to_numpy()).astype(np.float32) if len(frame) else np.zeros(0, np.float32)
            )
            columns[column] = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
        else:
            columns[column] = pa.array(
                frame[column].to_numpy() if frame[column].dtype != object else frame[column].tolist()
            )
    return pa.table(columns)


def _from_arrow(table: Any) -> dict[str, np.ndarray]:
    chunk = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name == "vector":
            flat = column.flatten().to_numpy(zero_copy_only=False)
            chunk[name] = flat.reshape(-1, column.type.list_size).astype(np.float32)
        else:
            chunk[name] = column.to_numpy(zero_copy_only=False)
    return chunk
