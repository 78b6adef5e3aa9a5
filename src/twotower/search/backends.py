"""Opening an index's vector backend from its manifest: faiss files in the folder, a Milvus collection (reached
with the URI the manifest records, or the one given again with its credentials), or a Redis vector set."""

from __future__ import annotations

import os
from pathlib import Path

from twotower.search.errors import IndexCorruptError, IndexMismatchError, SearchError
from twotower.search.faiss_backend import FaissBackend
from twotower.search.kinds import IndexKind
from twotower.search.manifest import Manifest, redact_uri


def open_backend(
    folder: Path,
    manifest: Manifest,
    spec: IndexKind,
    use_gpu: bool | None,
    milvus_uri: str | None = None,
    redis_url: str | None = None,
):
    if manifest.backend == "faiss":
        return FaissBackend.load(folder, manifest.build_id, spec, use_gpu)
    if manifest.backend == "redis":
        from twotower.search.redis_backend import RedisBackend

        return RedisBackend.connect(folder, manifest, spec, redis_url)
    if manifest.backend == "milvus":
        from twotower.search.milvus_backend import MilvusBackend, resolve_uri

        return MilvusBackend.connect(
            resolve_uri(milvus_uri_of(folder, manifest, milvus_uri), folder),
            manifest.milvus["collection"],
            spec,
            manifest.count,
        )
    raise IndexCorruptError(f"{folder}/manifest.json: unknown backend {manifest.backend!r}")


def milvus_uri_of(folder: Path, manifest: Manifest, given: str | None) -> str:
    """The URI to reach the index's Milvus: the one given (with its credentials), else the manifest's, which
    holds none: a server that needs them gets them from `milvus_uri=` / `--milvus-uri` or `$MILVUS_TOKEN`."""
    recorded = manifest.milvus["uri"]
    if given:
        if redact_uri(given)[0] != recorded:
            raise IndexMismatchError(
                f"{folder} keeps its vectors in Milvus at {recorded}, not at {redact_uri(given)[0]}"
            )
        return given
    if manifest.milvus.get("credentials") and not os.environ.get("MILVUS_TOKEN"):
        raise SearchError(
            f"{folder} keeps its vectors in Milvus at {recorded}, which was given with credentials; they are not "
            "stored in manifest.json: pass the URI with them again (--milvus-uri / milvus_uri=) or set $MILVUS_TOKEN"
        )
    return recorded
