"""A local vector store with Deep Lake's user-facing shape: `add`, `search`, and `.deep_memory`.

Layout of a store folder (see store_files.py for how its data versions are written and read):

    store.json                  what made the vectors (embedding function, dimension, document count), which
                                data version is current, and that version's checksums
    data.<generation>/          documents.parquet (id, text, metadata JSON per row, in row order) and
                                embeddings.npy ((n, dim) float32 unit-length vectors, computed once, at `add`)
    deep_memory/jobs/<job id>/  one folder per training job (see jobs.py)
    deep_memory/selected.json   the model `search(deep_memory=True)` uses, when set with `set_model`

Scores are cosine similarities: documents are stored unit length and queries are normalised at search.

Writers hold `<store>.lock`, a file lock beside the folder, and re-read the store under it: any number of
processes may `add` at once and every document is kept. Readers take no lock: each reads one whole version.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twotower.deep_memory.embeddings import (
    EmbeddingDimensionError,
    EmbeddingFunction,
    MiniLMEmbedding,
    describe,
    embed,
    unit_rows,
)
from twotower.deep_memory.memory import DeepMemory
from twotower.deep_memory.store_files import (
    FORMAT_VERSION,
    StoreCorruptError,
    Version,
    read_info,
    read_version,
    write_version,
)
from twotower.io.lock import folder_lock
from twotower.retrieval.exact import exact_search

__all__ = ["FORMAT_VERSION", "StoreCorruptError", "VectorStore"]


class VectorStore:
    """Documents with cached embeddings in a folder, exact cosine search, and trainable deep memory.

    >>> db = VectorStore("my_store", embedding_function=HashingEmbedding())   # default: all-MiniLM-L6-v2
    >>> db.add(["first text", "second text"], ids=["a", "b"], metadata=[{"n": 1}, {"n": 2}])
    >>> db.search(embedding_data=["second"], k=1)
    {'id': ['b'], 'text': ['second text'], 'score': [...], 'metadata': [{'n': 2}]}
    """

    def __init__(self, path: str | Path, embedding_function: EmbeddingFunction | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._embedding_function = embedding_function
        self._loaded: tuple[int, str | None] | None = None
        self._version = Version({})
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._metadata: list[str | None] = []
        self._embeddings = np.zeros((0, 0), np.float32)
        self._row_of: dict[str, int] | None = None
        self.deep_memory = DeepMemory(self)

    # ----------------------------------------------------------------- contents
    @property
    def embedding_function(self) -> EmbeddingFunction:
        if self._embedding_function is None:
            self._embedding_function = MiniLMEmbedding()
        return self._embedding_function

    def info(self) -> dict:
        """store.json: embedding function, dimension, count (empty dict for a new store)."""
        return read_info(self.path)

    @property
    def dim(self) -> int | None:
        return self.info().get("dim")

    def _refresh(self) -> None:
        """(Re)read documents when another process or object has added to the store since we last looked."""
        info = self.info()
        if (info.get("count", 0), info.get("data")) == self._loaded:
            return
        self._use(read_version(self.path))

    def _use(self, version: Version) -> None:
        self._version = version
        self._ids, self._texts, self._metadata = version.ids, version.texts, version.metadata
        self._embeddings = version.embeddings
        self._row_of = None
        self._loaded = (version.info.get("count", 0), version.info.get("data"))

    def __len__(self) -> int:
        self._refresh()
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        self._refresh()
        return list(self._ids)

    @property
    def texts(self) -> list[str]:
        self._refresh()
        return list(self._texts)

    @property
    def embeddings(self) -> np.ndarray:
        """The stored (n, dim) unit-length document vectors (read-only view)."""
        self._refresh()
        view = self._embeddings.view()
        view.flags.writeable = False
        return view

    def rows_of(self, ids: Sequence[str]) -> tuple[list[int], list[str]]:
        """Store rows of `ids`, and the ids that are not in the store."""
        self._refresh()
        if self._row_of is None:
            self._row_of = {d: i for i, d in enumerate(self._ids)}
        rows, missing = [], []
        for d in ids:
            row = self._row_of.get(str(d))
            if row is None:
                missing.append(str(d))
            else:
                rows.append(row)
        return rows, missing

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict | None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> list[str]:
        """Add documents; their vectors are computed now (or taken from `embeddings`) and never again.

        Returns the ids (random hex ones when `ids` is not given). Ids must be new and unique.
        """
        texts = list(texts)
        if not texts:
            return []
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("texts must be strings")
        ids = [uuid.uuid4().hex for _ in texts] if ids is None else [str(i) for i in ids]
        metadata = [None] * len(texts) if metadata is None else list(metadata)
        if len(ids) != len(texts) or len(metadata) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(ids)} ids and {len(metadata)} metadata entries")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be unique within one add() call")
        self._refresh()
        self._check_new(ids)
        dim = self.dim
        # Embedding is the slow part and reads nothing of the store but its dimension: done before the lock.
        if embeddings is None:
            vectors = embed(self.embedding_function, texts, dim, "documents")
        else:
            vectors = np.asarray(embeddings, dtype=np.float32)
            if vectors.shape[0] != len(texts) or vectors.ndim != 2 or (dim is not None and vectors.shape[1] != dim):
                raise EmbeddingDimensionError(
                    f"embeddings have shape {vectors.shape}; expected ({len(texts)}, {dim or 'dim'})"
                )
        vectors = unit_rows(vectors)
        meta_json = [json.dumps(m) if m is not None else None for m in metadata]
        with folder_lock(self.path, "Deep Memory store", announce=False):
            # Another process may have added since we looked: start from what is on disk now, or its rows are lost.
            self._use(read_version(self.path))
            self._check_new(ids)
            if self.dim is not None and vectors.shape[1] != self.dim:
                raise EmbeddingDimensionError(
                    f"these documents have {vectors.shape[1]}-d vectors but the store now holds {self.dim}-d vectors"
                )
            function = self._version.info.get("embedding_function") or describe(self.embedding_function)
            new = Version({}, ids, texts, meta_json, vectors)
            self._use(write_version(self.path, self._version, new, function))
        return ids

    def _check_new(self, ids: list[str]) -> None:
        _, missing = self.rows_of(ids)
        clash = sorted(set(ids) - set(missing))
        if clash:
            raise ValueError(f"{len(clash)} id(s) are already in the store, e.g. {clash[:5]}")

    # ------------------------------------------------------------------- search
    def search(
        self,
        embedding_data: str | Sequence[str] | None = None,
        k: int = 4,
        deep_memory: bool = False,
        embedding: np.ndarray | None = None,
        embedding_function: EmbeddingFunction | None = None,
    ) -> dict[str, list] | list[dict[str, list]]:
        """Top-`k` documents per query as {"id", "text", "score", "metadata"} lists, best first.

        `embedding_data` is a query string or a list of them (or pass query vectors as `embedding`).
        One query (a string, or a list of one) gives one dict, as Deep Lake does; several give a list.
        `deep_memory=True` maps the query through the trained adapter first (see `deep_memory.set_model`).
        """
        self._refresh()
        if not self._ids:
            raise ValueError(f"the store at {self.path} holds no documents: add() some first")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        single = isinstance(embedding_data, str)
        if embedding is not None:
            queries = np.atleast_2d(np.asarray(embedding, dtype=np.float32))
            if queries.shape[1] != self._embeddings.shape[1]:
                raise EmbeddingDimensionError(
                    f"query vectors are {queries.shape[1]}-d; the store holds {self._embeddings.shape[1]}-d"
                )
            single = single or np.asarray(embedding).ndim == 1
        elif embedding_data is not None:
            texts = [embedding_data] if single else list(embedding_data)
            if not texts:
                raise ValueError("embedding_data is empty")
            for i, text in enumerate(texts):
                if not isinstance(text, str) or not text.strip():
                    where = "" if single else f" (query {i})"
                    raise ValueError(f"the query is empty{where}: give some words to search for")
            queries = embed(embedding_function or self.embedding_function, texts, self._embeddings.shape[1], "queries")
        else:
            raise ValueError("pass embedding_data (query text) or embedding (query vectors)")
        if deep_memory:
            adapter = self.deep_memory.active_adapter()
            if adapter is not None:
                queries = adapter(queries)
            else:
                warnings.warn(self.deep_memory.no_model_reason(), stacklevel=2)
        scores, rows = exact_search(self._embeddings, unit_rows(queries), k)
        results = [
            {
                "id": [self._ids[r] for r in row],
                "text": [self._texts[r] for r in row],
                "score": [float(s) for s in score],
                "metadata": [json.loads(self._metadata[r]) if self._metadata[r] else {} for r in row],
            }
            for score, row in zip(scores, rows)
        ]
        return results[0] if single or len(results) == 1 else results

    def __repr__(self) -> str:
        info = self.info()
        return f"VectorStore({str(self.path)!r}, documents={info.get('count', 0)}, embedding={info.get('embedding_function')!r})"
