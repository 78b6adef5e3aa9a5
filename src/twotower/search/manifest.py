"""`manifest.json`: what an index folder holds and which model made it.

The manifest is the commit point: a build (or an add) writes its files under a fresh build id, then replaces
`manifest.json` in one rename, then deletes the files of the build it replaced. A reader sees the old index or
the new one, never a mix, and a build that fails before the rename leaves the old index serving. It ties the
vectors to the checkpoint (SHA-256 of the file, its model config, the vector dimension), records the kind and
backend, the number of documents, and the byte size and checksum (`twotower.io.checksum`: xxh3-128) of every
file, so a truncated, damaged or swapped copy is caught on load, once per process per file version
(`verify=False` / `--no-verify` skips the hashing, not the size check). Manifests written before recorded
SHA-256 digests under `sha256`; they are read as `sha256:` checksums and verified as such.

Writers (a build, an add) hold `<folder>.lock`, a file lock beside the folder, for their whole run: two
builds into one folder, or two processes adding documents, run one after the other and lose nothing.
Milvus credentials (`user:password@` in the URI, `?token=`) are never written here; a reader passes the URI
again (`milvus_uri=`, `--milvus-uri`) or sets `$MILVUS_TOKEN`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from twotower.io.atomic import write_json
from twotower.io.checksum import ChecksumError, verify_file
from twotower.io.lock import folder_lock
from twotower.io.lock import lock_path as io_lock_path
from twotower.search.errors import IndexCorruptError, IndexNotFoundError

log = logging.getLogger(__name__)

FORMAT = "twotower-index/1"
MANIFEST = "manifest.json"
# Query parameters of a URI that carry secrets: never written to a manifest.
SECRET_PARAMS = ("token", "password", "passwd", "secret", "api_key", "apikey", "key", "auth", "credential")


@dataclass
class Manifest:
    backend: str  # "faiss" | "milvus"
    index: dict[str, Any]  # kinds.kind_to_dict(...)
    dim: int
    count: int
    checkpoint: dict[str, Any]  # {"path", "sha256", "model_config"}
    build_id: str = ""  # names this build's files (documents-<id>.sqlite, vectors-<id>.faiss) and Milvus collection
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes, checked on load
    checksums: dict[str, str] = field(default_factory=dict)  # name -> "algorithm:digest", checked on load
    milvus: dict[str, Any] = field(default_factory=dict)  # {"uri" (no secrets), "collection", "credentials"}
    redis: dict[str, Any] = field(default_factory=dict)  # {"url" (no secrets), "key", ...}: redis_backend.record()
    source: list[str] = field(default_factory=list)  # collections the documents came from
    build: dict[str, Any] = field(default_factory=dict)  # seconds, passages_per_second, device
    # The BM25 part (search.lexical): {"folder", "corpus", "settings", "count", "seconds"}; {} for an index
    # built without one (before it existed, or --no-bm25): dense search only.
    bm25: dict[str, Any] = field(default_factory=dict)
    # How hybrid search fuses dense and BM25 (search.fusion_tuning): {"method", "weight", "depth", "tuned_on"};
    # {} until `twotower tune-fusion` sets it: the defaults of search.fusion_tuning.DEFAULT_FUSION apply.
    fusion: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    format: str = FORMAT

    @property
    def kind(self) -> str:
        return self.index["kind"]

    def describe(self) -> str:
        return f"{self.backend} {self.kind} index of {self.count:,} {self.dim}-d vectors"


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    path = Path(folder) / MANIFEST
    return write_json(path, asdict(manifest))


def read_manifest(folder: str | Path) -> Manifest:
    """Read and sanity-check an index folder's manifest; every error names the path and what is wrong."""
    folder = Path(folder)
    if not folder.exists():
        raise IndexNotFoundError(
            f"no index at {folder}: build one with `twotower index --ckpt ... --collection ... --out {folder}`"
        )
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(
            f"{folder} is not a twotower index: {MANIFEST} is missing (an interrupted build never writes it; rebuild the index)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{path} is not valid JSON ({exc}); the index is damaged, rebuild it") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IndexCorruptError(
            f"{path}: format is {data.get('format') if isinstance(data, dict) else None!r}, expected {FORMAT!r}"
        )
    if "checksums" not in data and isinstance(data.get("sha256"), dict):  # written before io.checksum was used
        data["checksums"] = {name: f"sha256:{digest}" for name, digest in data["sha256"].items()}
    known = set(Manifest.__dataclass_fields__)
    missing = [k for k in ("backend", "index", "dim", "count", "checkpoint") if k not in data]
    if missing:
        raise IndexCorruptError(f"{path} lacks the field(s) {', '.join(missing)}; rebuild the index")
    return Manifest(**{k: v for k, v in data.items() if k in known})


def documents_file(build_id: str) -> str:
    return f"documents-{build_id}.sqlite"


def check_files(folder: str | Path, manifest: Manifest, verify: bool = True) -> None:
    """Every file the manifest lists must be there at the recorded size (a partial copy fails here, early) and,
    with `verify`, have the recorded checksum (a damaged or swapped file of the same size fails too)."""
    folder = Path(folder)
    for name, size in manifest.files.items():
        path = folder / name
        if not path.exists():
            raise IndexCorruptError(f"index {folder} is incomplete: {name} is missing (the manifest lists it)")
        actual = path.stat().st_size
        if actual != size:
            raise IndexCorruptError(
                f"index {folder}: {name} is {actual:,} bytes but was {size:,} when built (truncated or replaced); rebuild the index"
            )
    if not verify:
        return
    unrecorded = [name for name in manifest.files if name not in manifest.checksums]
    if unrecorded:
        log.warning(
            "index %s records no checksum for %s (built by an older twotower); only sizes were checked",
            folder,
            ", ".join(unrecorded),
        )
    for name, expected in manifest.checksums.items():
        path = folder / name
        if not path.exists():
            raise IndexCorruptError(f"index {folder} is incomplete: {name} is missing (the manifest lists it)")
        try:
            verify_file(path, expected, "index file")
        except ChecksumError:
            raise IndexCorruptError(
                f"index {folder}: {path} is damaged: its checksum differs from the one recorded when it was built "
                "(the file was changed or corrupted); rebuild the index"
            ) from None


def lock_path(folder: str | Path) -> Path:
    """`<folder>.lock`, beside the index folder (not inside: a failed first build removes the folder)."""
    return io_lock_path(folder)


@contextmanager
def index_lock(folder: str | Path) -> Iterator[None]:
    """Hold the index folder's inter-process write lock; says so when it has to wait for another writer."""
    with folder_lock(folder, "index"):
        yield


def redact_uri(uri: str) -> tuple[str, bool]:
    """`(uri without user:password@ and secret query parameters, whether anything was removed)`."""
    if "://" not in uri:
        return uri, False
    parts = urlsplit(uri)
    netloc, removed = parts.netloc, False
    if "@" in netloc:
        netloc, removed = netloc.rsplit("@", 1)[1], True
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if not any(s in k.lower() for s in SECRET_PARAMS)]
    removed = removed or len(kept) != len(query)
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment)), removed
