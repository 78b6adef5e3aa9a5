"""Vectors in a Redis 8 vector set (VADD/VSIM, an HNSW graph inside the server); texts stay in SQLite.

Keys, under the config's prefix (default `twotower:`) and index name (default: the index folder's name):

    <prefix><name>:<build id>   the vector set of one build; element names are row numbers in the SQLite store
    <prefix><name>              hash naming the committed build, its folder and dimension (the name is taken)
    <prefix><name>:lock         held while a build writes, so two builds into one name cannot interleave

A build writes a fresh vector set and commits by writing the folder's manifest, as the other backends do:
a build that dies half way leaves a vector set no manifest names (removed by the next build of the name),
never a partial index. `Searcher.add` appends rows above the committed count to the same set; rows above
the manifest's count (an add that never committed) are filtered out of every search.
VSIM scores cosine as (1 + cos) / 2; they are turned back into cosine, the faiss backend's inner product.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from twotower.search.errors import IndexCorruptError, IndexMismatchError, SearchError
from twotower.search.kinds import IndexKind
from twotower.search.manifest import Manifest, redact_uri
from twotower.search.redis_config import (
    RedisConfig,
    RedisIndexExistsError,
    build_running,
    connect,
    load_redis_config,
    refuse_taken_name,
)

log = logging.getLogger(__name__)

PIPELINE = 1000  # VADDs a round trip: large enough to hide latency, small enough to bound client memory
LOCK_SECONDS = 600  # a build that dies frees its name after this; a live one renews it every chunk


class RedisBackend:
    name = "redis"

    def __init__(self, client, url: str, key: str, spec: IndexKind, count: int, config: RedisConfig) -> None:
        spec.redis_options()  # an ivf kind fails here, before anything is written
        self.client = client
        self.url = url
        self.key = key
        self.spec = spec
        self.config = config
        self.visible = count  # rows below this are committed in the manifest
        self.written = count  # rows below this may be in the set (an add in progress)
        self._lock = None
        self._filter = False

    # -- building -----------------------------------------------------------------------------------------

    @classmethod
    def create(cls, given: Any, spec: IndexKind, dim: int, folder: Path, build_id: str) -> RedisBackend:
        """A new, empty vector set for build `build_id`; takes the index name's lock and refuses a name that
        exists unless the config says overwrite."""
        config = given if isinstance(given, RedisConfig) else load_redis_config(given)[0]
        config.check_dim(dim)
        spec.redis_options()
        url = config.resolved_url()
        client = connect(url)
        name = config.name_for(folder)
        base = f"{config.prefix}{name}"
        backend = cls(client, url, f"{base}:{build_id}", spec, 0, config)
        lock = client.lock(f"{base}:lock", timeout=LOCK_SECONDS, blocking=False)
        if not lock.acquire():
            raise build_running(name, url)
        backend._lock = lock
        try:
            refuse_taken_name(client, config, folder, url)
        except RedisIndexExistsError:
            lock.release()
            raise
        backend._dim = dim
        return backend

    @property
    def needs_training(self) -> bool:
        return False  # the HNSW graph is built as vectors arrive

    def train(self, vectors: np.ndarray) -> None:
        pass

    def add(self, vectors: np.ndarray) -> None:
        """VADD each vector under its row number, pipelined `PIPELINE` at a time."""
        from redis.commands.vectorset.commands import QuantizationOptions
        from redis.exceptions import ResponseError

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        options, _ = self.spec.redis_options()
        quant = self.config.quantization.lower()
        if quant != "q8":  # q8 is VADD's default and has no option word
            options["quantization"] = QuantizationOptions.NOQUANT if quant == "noquant" else QuantizationOptions.BIN
        start = self.visible
        self._renew_lock()
        for offset in range(0, len(vectors), PIPELINE):
            pipe = self.client.pipeline(transaction=False)
            for i, vector in enumerate(vectors[offset : offset + PIPELINE]):
                pipe.vset().vadd(self.key, vector.tobytes(), str(start + offset + i), **options)
            self.written = max(self.written, start + offset + PIPELINE)
            try:
                pipe.execute()
            except ResponseError as exc:
                if "dimension" in str(exc).lower():
                    raise IndexMismatchError(
                        f"Redis vector set {self.key} holds {self.client.vset().vdim(self.key)}-d vectors, the model "
                        f"makes {vectors.shape[1]}-d ones: rebuild the index with this model"
                    ) from None
                raise
        self.written = start + len(vectors)
        self.visible = start + len(vectors)

    def _renew_lock(self) -> None:
        if self._lock is not None and not self._lock.reacquire():
            raise SearchError(f"lost the build lock of {self.key} (held over {LOCK_SECONDS} s without renewal)")

    def save(self, folder: Path, build_id: str) -> dict[str, int]:
        """Before the manifest commits: wait until the server has fsynced the vectors to its append-only file."""
        from redis.exceptions import ResponseError

        self._renew_lock()
        try:
            local, _ = self.client.execute_command("WAITAOF", 1, 0, 60_000)
        except ResponseError as exc:  # "appendonly is disabled": durability is the server's own setting
            local = 0
            log.warning("Redis at %s: %s", redact_uri(self.url)[0], exc)
        if not local:
            log.warning(
                "Redis at %s keeps no append-only file: the index lives until the server's next RDB snapshot",
                redact_uri(self.url)[0],
            )
        return {}

    def record(self) -> dict[str, Any]:
        """What the manifest keeps: the URL without credentials, the key and how vectors are stored."""
        url, secret = redact_uri(self.url)
        return {
            "url": url,
            "key": self.key,
            "index_name": self.key[len(self.config.prefix) :].rsplit(":", 1)[0],
            "prefix": self.config.prefix,
            "quantization": self.config.quantization.lower(),
            "metric": "cosine",
            **({"credentials": True} if secret else {}),
        }

    def commit(self, folder: Path, previous: Manifest | None) -> None:
        """After the manifest is written: claim the name, remove the vector sets no manifest names, unlock."""
        base = self.key.rsplit(":", 1)[0]
        try:
            self.client.hset(base, mapping={"folder": str(Path(folder).resolve()), "key": self.key, "dim": self._dim})
            build_key = re.compile(re.escape(base) + r":[0-9a-f]{12}")  # not the lock, not another name
            stale = [
                key
                for key in (k.decode() for k in self.client.scan_iter(match=_glob_escape(base) + ":*", count=1000))
                if build_key.fullmatch(key) and key != self.key
            ]
            if previous and previous.redis and redact_uri(self.url)[0] == previous.redis.get("url"):
                stale.append(previous.redis["key"])
            if stale:
                self.client.delete(*stale)
        except Exception as exc:  # the index is committed; a stale vector set is only wasted memory
            log.warning("could not remove old vector sets of %s: %s", base, exc)
        finally:
            self._release()
        try:
            if self.client.info("persistence").get("aof_enabled"):
                # The append-only file now holds one VADD a vector, which a restart would replay (re-inserting
                # into the graph, as slow as the load); a rewrite stores the graph itself (RDB preamble).
                self.client.bgrewriteaof()
        except Exception as exc:  # e.g. Redis's own automatic rewrite is running: only restarts are slower
            log.info("Redis at %s: no AOF rewrite after the build: %s", redact_uri(self.url)[0], exc)

    def drop(self) -> None:
        try:
            self.client.delete(self.key)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            try:
                self._lock.release()
            except Exception as exc:  # expired: someone else may hold it now, which is theirs to release
                log.warning("build lock of %s: %s", self.key, exc)
            self._lock = None

    # -- serving ------------------------------------------------------------------------------------------

    @classmethod
    def connect(cls, folder: Path, manifest: Manifest, spec: IndexKind, url: str | None = None) -> RedisBackend:
        """The committed vector set of an index folder; checks it is there with the manifest's shape."""
        recorded = manifest.redis
        url = _reach(folder, recorded, url)
        client = connect(url)
        key = recorded["key"]
        config = RedisConfig(
            url=url, prefix=recorded.get("prefix", ""), quantization=recorded.get("quantization", "noquant")
        )
        stored = int(client.vset().vcard(key) or 0)
        if stored < manifest.count:
            what = f"holds {stored:,} vectors" if stored else "has no vector set"
            raise IndexCorruptError(
                f"{folder}: Redis at {recorded['url']} {what} under {key}, the manifest says {manifest.count:,} "
                "(was the server's data lost or flushed?); rebuild the index"
            )
        dim = int(client.vset().vdim(key))
        if dim != manifest.dim:
            raise IndexMismatchError(
                f"{folder}: Redis vector set {key} holds {dim}-d vectors, the model makes {manifest.dim}-d ones"
            )
        backend = cls(client, url, key, spec, manifest.count, config)
        backend._dim = dim
        backend.written = stored
        backend._filter = stored > manifest.count
        return backend

    def configure(self, spec: IndexKind) -> None:
        spec.redis_options()
        self.spec = spec

    @property
    def device(self) -> str:
        return f"Redis {redact_uri(self.url)[0]}"

    def __len__(self) -> int:
        return self.visible

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, max(self.visible, 1)))
        extra = self.written - self.visible if self._filter else 0
        _, options = self.spec.redis_options()
        if "ef" in options:
            options["ef"] = max(options["ef"], k + extra)  # fewer candidates than k would cut the list short
        pipe = self.client.pipeline(transaction=False)
        for query in queries:
            pipe.vset().vsim(self.key, query.tobytes(), with_scores=True, count=k + extra, **options)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        for i, found in enumerate(pipe.execute()):
            j = 0
            for element, similarity in (found or {}).items():
                row = int(element)
                if row >= self.visible or j >= k:
                    continue
                rows[i, j], scores[i, j] = row, 2.0 * float(similarity) - 1.0
                j += 1
        return scores, rows

    def rollback(self, count: int) -> None:
        """Remove rows from `count` on: undoes an add whose manifest was never written."""
        pipe = self.client.pipeline(transaction=False)
        for row in range(count, self.written):
            pipe.vset().vrem(self.key, str(row))
        pipe.execute()
        self.visible = self.written = count
        self._filter = False

    def close(self) -> None:
        self._release()
        self.client.close()


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _reach(folder: Path, recorded: dict[str, Any], given: str | None) -> str:
    """The URL to reach the index's Redis: the one given or $REDIS_URL when it names the same server (with its
    password), else the manifest's, which holds none."""
    import os

    for candidate, where in ((given, "--redis-url / redis_url="), (os.environ.get("REDIS_URL"), "$REDIS_URL")):
        if candidate:
            if redact_uri(candidate)[0] == recorded["url"]:
                return candidate
            if where.startswith("--"):
                raise IndexMismatchError(
                    f"{folder} keeps its vectors in Redis at {recorded['url']}, not at {redact_uri(candidate)[0]}"
                )
    if recorded.get("credentials"):
        raise SearchError(
            f"{folder} keeps its vectors in Redis at {recorded['url']}, which needs a password that manifest.json "
            "does not store: pass the URL with it (--redis-url / redis_url=) or set $REDIS_URL"
        )
    return recorded["url"]
