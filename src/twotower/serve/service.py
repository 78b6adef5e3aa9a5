"""`SearchService`: one loaded `Searcher` shared by every request, with the locks that make that safe.

The model and the index are loaded once, before the server starts; requests run on the server's worker
threads at the same time. What is shared, and how:

* the torch encoder (tokenizer + query tower): torch modules are not guaranteed thread-safe (a tokenizer's
  caches, a transformer's lazily built buffers), so `LockedEncoder` lets one thread encode at a time;
* the faiss index on the CPU: faiss documents concurrent `search` calls on a CPU index as safe, so searches
  overlap; a GPU index or a Milvus client is not documented so, and gets its own lock (`LockedBackend`);
* the SQLite document store: opened read-only and immutable, and SQLite is built serialized
  (`sqlite3.threadsafety == 3`), so fetches overlap;
* any mode but `dense` (BM25, hybrid, when the `Searcher` has them) runs under one lock for the whole call,
  since we cannot vouch for the thread-safety of code this module does not know.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twotower.search import Results, Searcher
from twotower.search.manifest import MANIFEST
from twotower.serve.schemas import Limits

# The modes `Searcher.search(..., mode=)` knows when it takes a `mode` but does not say which.
KNOWN_MODES = ("dense", "bm25", "hybrid")


class BadRequest(ValueError):
    """A request the service refuses, with the one message the client sees (HTTP 400, or `status`)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LockedEncoder:
    """The searcher's encoder with its query-side calls serialized (the rest is passed through)."""

    def __init__(self, encoder: Any, lock: threading.Lock) -> None:
        self._encoder = encoder
        self._lock = lock

    def encode_queries(self, *args: Any, **kwargs: Any):
        with self._lock:
            return self._encoder.encode_queries(*args, **kwargs)

    def token_counts(self, text: str) -> tuple[int, int]:
        with self._lock:
            return self._encoder.token_counts(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)


class LockedBackend:
    """A vector backend whose `search` is serialized (GPU faiss, Milvus clients)."""

    def __init__(self, backend: Any, lock: threading.Lock) -> None:
        self._backend = backend
        self._lock = lock

    def search(self, *args: Any, **kwargs: Any):
        with self._lock:
            return self._backend.search(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._backend)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def searcher_modes(searcher: Any) -> tuple[str, ...]:
    """The search modes `searcher` serves: what it declares (`searcher.modes`, or a `Literal` annotation of
    `search(mode=)`), all known modes if `search` takes a `mode` without saying which, else `dense` alone."""
    declared = getattr(searcher, "modes", None)
    if isinstance(declared, (list, tuple, set, frozenset)) and declared and all(isinstance(m, str) for m in declared):
        return tuple(declared)
    parameter = inspect.signature(searcher.search).parameters.get("mode")
    if parameter is None:
        return ("dense",)
    try:
        hints = typing.get_type_hints(searcher.search)
    except Exception:  # a forward reference the service cannot resolve: fall back to the known modes
        hints = {}
    literal = tuple(a for a in typing.get_args(hints.get("mode")) if isinstance(a, str))
    return literal or KNOWN_MODES


class SearchService:
    """A loaded `Searcher` answering validated queries from many threads at once."""

    def __init__(self, searcher: Searcher, limits: Limits | None = None) -> None:
        self.searcher = searcher
        self.limits = limits or Limits()
        self.modes = searcher_modes(searcher)
        self._takes_mode = "mode" in inspect.signature(searcher.search).parameters
        self._whole_call = threading.Lock()
        # Wrapped in place, once (a second service over the same searcher shares the first one's locks).
        if not isinstance(searcher.encoder, LockedEncoder):
            searcher.encoder = LockedEncoder(searcher.encoder, threading.Lock())
        backend = searcher.backend
        concurrent_ok = getattr(backend, "name", "") == "faiss" and getattr(backend, "device", "CPU") == "CPU"
        if not concurrent_ok and not isinstance(backend, LockedBackend):
            searcher.backend = LockedBackend(backend, threading.Lock())
        self._manifest_sha256 = _manifest_hash(Path(searcher.folder))

    # -- queries ------------------------------------------------------------------------------------------

    def check(self, queries: Sequence[str], k: int, mode: str) -> None:
        """Refuse what the service will not run, with one message each (the API answers 400)."""
        limits = self.limits
        if not queries:
            raise BadRequest("queries is empty: give at least one query")
        if len(queries) > limits.max_batch:
            raise BadRequest(f"too many queries in one request: {len(queries)}, at most {limits.max_batch}")
        for i, query in enumerate(queries):
            where = f" (query {i})" if len(queries) > 1 else ""
            if not query.strip():
                raise BadRequest(f"the query is empty{where}: give some words to search for")
            if len(query) > limits.max_query_chars:
                raise BadRequest(
                    f"the query is too long{where}: {len(query):,} characters, at most {limits.max_query_chars:,}"
                )
        if not 1 <= k <= limits.max_k:
            raise BadRequest(f"k must be between 1 and {limits.max_k}, got {k}")
        if mode not in self.modes:
            raise BadRequest(f"unknown mode {mode!r}: this index serves {', '.join(self.modes)}")

    def search(self, queries: Sequence[str], k: int = 10, mode: str = "dense") -> list[Results]:
        """Check the request, then search: one `Results` a query, in order, as `Searcher.search` returns them."""
        queries = list(queries)
        self.check(queries, k, mode)
        if not self._takes_mode:
            return self.searcher.search(queries, k=k)
        if mode == "dense":
            return self.searcher.search(queries, k=k, mode=mode)
        with self._whole_call:
            return self.searcher.search(queries, k=k, mode=mode)

    def unread_warning(self, query: str, mode: str) -> str | None:
        """The searcher's `UnknownQueryWarning` as a message for the client: a dense query none of whose tokens
        the model knows is encoded from [UNK] alone, and its hits are arbitrary."""
        if mode != "dense":
            return None
        tokens, unknown = self.searcher.encoder.token_counts(query)
        if unknown < tokens:
            return None
        return "the model knows none of the query's words, so its results are arbitrary: try other words"

    def document(self, pid: str) -> Any:
        """The stored document `pid` (id, text, metadata); `BadRequest` (404) when the index has none."""
        store = self.searcher.store
        row = store.rows_of([pid]).get(pid)
        found = store.get([row])[0] if row is not None else None
        if found is None:
            raise BadRequest(f"no document with id {pid!r} in this index", status=404)
        return found

    # -- description --------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        manifest = self.searcher.manifest
        config = manifest.checkpoint.get("model_config", {})
        tower = str(config.get("tower", {}).get("_target_", "?")).rsplit(".", 1)[-1]
        settings = {key: value for key, value in manifest.index.items() if key != "kind"}
        return {
            # The checkpoint's file name and hash, not its path: the server's folders are none of a client's business.
            "model": {
                "tower": tower,
                "tokenizer": (config.get("tokenizer") or {}).get("kind", "?"),
                "checkpoint": Path(manifest.checkpoint.get("path", "?")).name,
                "checkpoint_sha256": manifest.checkpoint.get("sha256", ""),
                "query_max_length": config.get("query_max_length"),
            },
            "index": {"kind": manifest.kind, "settings": settings, "dim": manifest.dim},
            "backend": manifest.backend,
            "device": self.searcher.device,
            "documents": len(self.searcher),
            "manifest_sha256": self._manifest_sha256,
            "build_id": manifest.build_id,
            "created": manifest.created,
            "modes": list(self.modes),
            "limits": self.limits.as_dict(),
        }


def limit_compute_threads(threads: int) -> None:
    """Give torch and faiss `threads` threads each (process-wide). A server gets its parallelism from concurrent
    requests; letting every request also fan out over all cores (the libraries' default) can only oversubscribe
    the CPU once several requests run at once (bench/bench_serve.py measures both)."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def _manifest_hash(folder: Path) -> str:
    """SHA-256 of `manifest.json` as loaded: names this exact build of the index (its files' hashes are in it)."""
    return hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
