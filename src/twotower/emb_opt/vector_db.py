"""Vector databases the runner searches: any faiss index, or a plain numpy matrix searched exactly.

Both follow one small protocol (`VectorDB`): `dim`, `len()`, `query(vectors, k) -> QueryResults` and
`vectors_at(rows)`. Adapting another index (e.g. `twotower.search`) takes a class with those four members.

Labels: a faiss index labels its vectors 0..n-1 in insertion order; `ids[label]` is the item id (the
label itself when no `ids` are given) and `fields[name][label]` its stored fields.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from twotower.io.npy import load_npy
from twotower.retrieval.exact import exact_search

METRICS = ("l2", "ip")


@dataclass(frozen=True)
class QueryResults:
    """The k nearest items of each of Q queries.

    `ids` (Q, k), `vectors` (Q, k, dim) float32, `distances` (Q, k) as the index reports them (squared L2
    for metric "l2", inner product, larger is closer, for "ip"), `fields` {name: (Q, k)}. Slots beyond the
    end of a small index have `valid` False; their other entries are filler.
    """

    ids: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray
    valid: np.ndarray
    fields: Mapping[str, np.ndarray]


@runtime_checkable
class VectorDB(Protocol):
    dim: int

    def __len__(self) -> int: ...

    def query(self, vectors: np.ndarray, k: int) -> QueryResults: ...

    def vectors_at(self, rows: np.ndarray) -> np.ndarray: ...


def check_query_vectors(vectors: Any, dim: int, name: str = "query_vectors") -> np.ndarray:
    """`vectors` as a C-contiguous float32 (Q, dim) array, or a ValueError naming `name` and the shape."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        hint = "; use vectors[None] for a single query" if array.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array (n_queries, {dim}), got shape {array.shape}{hint}")
    if array.shape[1] != dim:
        raise ValueError(f"{name} has dimension {array.shape[1]} but the vector database holds {dim}-d vectors")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(array)


def _as_columns(fields: Any, n: int) -> dict[str, np.ndarray]:
    """Stored fields as {name: (n,) array}, from a mapping of arrays, a pandas DataFrame or a pyarrow Table."""
    if fields is None:
        return {}
    if hasattr(fields, "column_names") and hasattr(fields, "column"):  # pyarrow.Table
        columns = {name: fields.column(name).to_numpy(zero_copy_only=False) for name in fields.column_names}
    elif hasattr(fields, "columns") and hasattr(fields, "to_numpy"):  # pandas.DataFrame
        columns = {str(name): fields[name].to_numpy() for name in fields.columns}
    else:
        columns = {str(name): np.asarray(values) for name, values in dict(fields).items()}
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"fields: column {name!r} has {len(values)} rows but the index holds {n} vectors")
    return columns


class _StoredItems:
    """What both databases share: item ids and stored fields looked up by row, and result assembly."""

    def __init__(self, n: int, dim: int, ids: Any, fields: Any, metric: str) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.dim = int(dim)
        self.metric = metric
        self._n = int(n)
        self.ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids)
        if self.ids.shape != (n,):
            raise ValueError(f"ids must have shape ({n},) to match the index, got {self.ids.shape}")
        self.fields = _as_columns(fields, n)

    def __len__(self) -> int:
        return self._n

    def _results(self, rows: np.ndarray, distances: np.ndarray) -> QueryResults:
        q, k = rows.shape
        if not self._n:  # an empty index has no slots at all
            empty = np.zeros((q, 0))
            return QueryResults(
                self.ids[:0].reshape(q, 0), np.zeros((q, 0, self.dim), np.float32), empty, empty.astype(bool), {}
            )
        valid = rows >= 0
        safe = np.where(valid, rows, 0)  # missing slots read row 0; `valid` masks them
        return QueryResults(
            ids=self.ids[safe],
            vectors=np.asarray(self.vectors_at(safe.ravel()), dtype=np.float32).reshape(q, k, self.dim),
            distances=distances,
            valid=valid,
            fields={name: values[safe] for name, values in self.fields.items()},
        )

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


class NumpyVectorDB(_StoredItems):
    """Exact k-NN over an in-memory (n, dim) matrix with `twotower.retrieval.exact.exact_search`; no index to build.

    (It used to rank with numpy itself; `exact_search` measured faster: 22 against 45 ms for 64 queries and
    68 against 265 ms for 256 queries over 100k x 32, and a fraction of a millisecond for a single query.)
    """

    def __init__(self, vectors: np.ndarray, ids: Any = None, fields: Any = None, metric: str = "l2") -> None:
        matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if matrix.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {matrix.shape}")
        super().__init__(len(matrix), matrix.shape[1], ids, fields, metric)
        self.matrix = matrix

    @classmethod
    def from_npy(cls, path: str | os.PathLike, fields: str | os.PathLike | None = None, **kwargs: Any) -> NumpyVectorDB:
        """Load vectors from a .npy file and optional stored fields from a Parquet file (one row per vector)."""
        table = None
        if fields is not None:
            import pyarrow.parquet as pq

            table = pq.read_table(fields)
        return cls(load_npy(path, "vectors"), fields=table, **kwargs)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        return self.matrix[np.asarray(rows, dtype=np.int64)]

    def query(self, vectors: np.ndarray, k: int) -> QueryResults:
        queries = check_query_vectors(vectors, self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf if self.metric == "l2" else -np.inf, dtype=np.float32)
        if self._n:
            found, top = exact_search(self.matrix, queries, k, use_gpu=False, metric=self.metric)
            rows[:, : top.shape[1]] = top
            distances[:, : top.shape[1]] = np.maximum(found, 0) if self.metric == "l2" else found
        return self._results(rows, distances)


class FaissVectorDB(_StoredItems):
    """Any faiss index, with optional item ids and stored fields; result vectors come from the index.

    The index must reconstruct its vectors (flat, HNSW, IVF after `make_direct_map`, which is done here
    for IVF indexes) unless `vectors` (n, dim) is given; quantised indexes return approximate vectors.
    `search_params` (e.g. `faiss.SearchParametersIVF(nprobe=16)`) is passed to every search.
    """

    def __init__(
        self,
        index: Any,
        ids: Any = None,
        fields: Any = None,
        vectors: np.ndarray | None = None,
        search_params: Any = None,
    ) -> None:
        import faiss

        metric = {faiss.METRIC_L2: "l2", faiss.METRIC_INNER_PRODUCT: "ip"}.get(index.metric_type)
        if metric is None:
            raise ValueError(f"index: unsupported faiss metric type {index.metric_type}; use L2 or inner product")
        super().__init__(index.ntotal, index.d, ids, fields, metric)
        self.index = index
        self.search_params = search_params
        self.matrix = None if vectors is None else np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if self.matrix is not None and self.matrix.shape != (index.ntotal, index.d):
            raise ValueError(
                f"vectors must have shape ({index.ntotal}, {index.d}) like the index, got {self.matrix.shape}"
            )
        if self.matrix is None and index.ntotal:
            self._enable_reconstruction(faiss)

    def _enable_reconstruction(self, faiss: Any) -> None:
        try:
            self.index.reconstruct_batch(np.zeros(1, dtype=np.int64))
            return
        except RuntimeError:
            pass
        try:
            faiss.extract_index_ivf(self.index).make_direct_map()
            self.index.reconstruct_batch(np.zeros(1, dtype=np.int64))
        except RuntimeError as err:
            raise ValueError(
                f"index {type(self.index).__name__} cannot return its stored vectors; pass vectors=(n, dim) array"
            ) from err

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, metric: str = "l2", **kwargs: Any) -> FaissVectorDB:
        """An exact flat index over `vectors` (the usual choice up to ~1M vectors on CPU)."""
        import faiss

        matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if matrix.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {matrix.shape}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        index = faiss.IndexFlatL2(matrix.shape[1]) if metric == "l2" else faiss.IndexFlatIP(matrix.shape[1])
        index.add(matrix)
        return cls(index, **kwargs)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        fields: str | os.PathLike | None = None,
        id_field: str | None = None,
        **kwargs: Any,
    ) -> FaissVectorDB:
        """Read a faiss index file, with optional stored fields from Parquet (`id_field` names the id column)."""
        import faiss

        table = None
        if fields is not None:
            import pyarrow.parquet as pq

            table = pq.read_table(fields)
        ids = None
        if id_field is not None:
            if table is None:
                raise ValueError("id_field needs a fields Parquet file to read ids from")
            ids = table.column(id_field).to_numpy(zero_copy_only=False)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"faiss index not found: {path}")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:  # faiss reports a foreign or truncated file as a long RuntimeError
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ValueError(f"{path} is not a readable faiss index ({first.strip()})") from None
        return cls(index, ids=ids, fields=table, **kwargs)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if self.matrix is not None:
            return self.matrix[rows]
        return self.index.reconstruct_batch(rows)

    def query(self, vectors: np.ndarray, k: int) -> QueryResults:
        queries = check_query_vectors(vectors, self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not self._n:
            empty = np.zeros((len(queries), 0))
            return self._results(empty.astype(np.int64), empty.astype(np.float32))
        if self.search_params is None:
            distances, rows = self.index.search(queries, k)
        else:
            distances, rows = self.index.search(queries, k, params=self.search_params)
        return self._results(rows, distances)


def sample_queries(vector_db: VectorDB, n: int, seed: int = 0) -> np.ndarray:
    """`n` stored vectors drawn without replacement: starting queries that cover the collection."""
    if len(vector_db) == 0:
        raise ValueError("vector_db is empty: no vectors to start from")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vector_db), size=min(n, len(vector_db)), replace=False)
    return np.asarray(vector_db.vectors_at(np.sort(rows)), dtype=np.float32)
