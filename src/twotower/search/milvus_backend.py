"""Vectors in a Milvus collection through `pymilvus`: Milvus Lite (a local `.db` folder) or a server by URI.

The collection holds `row` (INT64 primary key) and `vector` (FLOAT_VECTOR, inner product); texts stay in the
index folder's SQLite store, so the same code serves Lite, a standalone server and a cluster. A server's
token comes from `$MILVUS_TOKEN` or the URI (`https://user:password@host:19530`, `?token=...`); neither is
ever written to the manifest nor shown in messages (`redact_uri`).

Every build writes a fresh collection (`twotower_<build id>`); the manifest names the one in use, so a failed
rebuild leaves the previous collection serving. Rows at or beyond the manifest's count (an interrupted add)
are filtered out of every search.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from twotower.search.errors import IndexCorruptError, SearchError
from twotower.search.kinds import IndexKind
from twotower.search.manifest import redact_uri

LITE_FILE = "milvus.db"
INSERT_BATCH = 5000


def resolve_uri(uri: str, folder: str | Path) -> str:
    """A Lite path relative to the index folder becomes absolute; server URIs pass through."""
    if "://" in uri:
        return uri
    path = Path(uri)
    return str(path if path.is_absolute() else Path(folder).resolve() / path)


def _client(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise SearchError(
            "the milvus backend needs pymilvus (and milvus-lite for a local .db): pip install pymilvus milvus-lite"
        ) from None
    try:
        return MilvusClient(uri=uri, token=os.environ.get("MILVUS_TOKEN", ""))
    except Exception as exc:  # pymilvus wraps lock, network and auth failures in several types
        hint = (
            " (Milvus Lite allows one process at a time on a .db: close the other search first)"
            if "://" not in uri
            else ""
        )
        safe = redact_uri(uri)[0]
        raise SearchError(f"cannot open Milvus at {safe}: {str(exc).replace(uri, safe)}{hint}") from None


class MilvusBackend:
    name = "milvus"

    def __init__(self, client, uri: str, collection: str, spec: IndexKind, count: int) -> None:
        self.client = client
        self.uri = uri
        self.collection = collection
        self.spec = spec
        self.visible = count  # rows below this are committed in the manifest
        self._filter = False  # only an interrupted add leaves rows above `visible`; filtering costs time

    @classmethod
    def create(cls, uri: str, collection: str, spec: IndexKind, dim: int) -> MilvusBackend:
        from pymilvus import DataType

        client = _client(uri)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index_type, params = spec.milvus_index()
        index_params = client.prepare_index_params()
        index_params.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=params)
        client.create_collection(collection, schema=schema, index_params=index_params)
        return cls(client, uri, collection, spec, 0)

    @classmethod
    def connect(cls, uri: str, collection: str, spec: IndexKind, count: int) -> MilvusBackend:
        client = _client(uri)
        if not client.has_collection(collection):
            raise IndexCorruptError(
                f"Milvus at {redact_uri(uri)[0]} has no collection {collection!r} (the manifest names it); rebuild the index"
            )
        client.load_collection(collection)
        backend = cls(client, uri, collection, spec, count)
        backend._filter = backend.stored_rows() > count
        return backend

    def configure(self, spec: IndexKind) -> None:
        self.spec = spec

    @property
    def device(self) -> str:
        return f"Milvus {'Lite' if '://' not in self.uri else redact_uri(self.uri)[0]}"

    @property
    def needs_training(self) -> bool:
        return False  # Milvus trains its own index when the collection is indexed

    def train(self, vectors: np.ndarray) -> None:
        pass

    def __len__(self) -> int:
        return self.visible

    def stored_rows(self) -> int:
        return int(self.client.get_collection_stats(self.collection)["row_count"])

    def add(self, vectors: np.ndarray) -> None:
        start = self.visible
        for offset in range(0, len(vectors), INSERT_BATCH):
            chunk = np.asarray(vectors[offset : offset + INSERT_BATCH], dtype=np.float32)
            self.client.insert(self.collection, [{"row": start + offset + i, "vector": v} for i, v in enumerate(chunk)])
        self.visible = start + len(vectors)

    def rollback(self, count: int) -> None:
        """Delete rows from `count` on: undoes an add whose manifest was never written."""
        self.client.delete(self.collection, filter=f"row >= {int(count)}")
        self.visible = count
        self._filter = self.stored_rows() > count

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32)
        k = max(1, min(k, max(self.visible, 1)))
        params: dict[str, Any] = {"metric_type": "IP", "params": self.spec.milvus_search_parameters()}
        hits = self.client.search(
            self.collection,
            data=list(queries),
            limit=k,
            filter=f"row < {self.visible}" if self._filter else "",
            output_fields=["row"],
            search_params=params,
        )
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        for i, found in enumerate(hits):
            for j, hit in enumerate(found[:k]):
                rows[i, j] = hit.get("entity", {}).get("row", hit.get("id"))
                scores[i, j] = hit["distance"]
        return scores, rows

    def save(self, folder: Path, build_id: str) -> dict[str, int]:
        # Sealing the inserted segments lets Milvus index them; unsealed rows are scanned one by one.
        self.client.flush(self.collection)
        return {}

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)

    def close(self) -> None:
        self.client.close()


def drop_collection(uri: str, collection: str) -> None:
    """Remove a collection an older build left behind (after a newer manifest has been committed)."""
    client = _client(uri)
    try:
        if client.has_collection(collection):
            client.drop_collection(collection)
    finally:
        client.close()
