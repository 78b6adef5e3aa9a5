"""Build an index from a checkpoint and a collection (adding to one is `search.add`); it commits atomically.

    build_index("outputs/runs/.../checkpoints/best.pt", "../shared/data/msmarco-passage/collection.tsv",
                "outputs/index/msmarco", kind="hnsw")

Documents are encoded in batches (Rich progress bar, passages per second), stored in SQLite and added to the
vector backend under a fresh build id; `manifest.json` is replaced last. If anything fails before that, this
build's files (and Milvus collection) are removed and the previous index keeps serving unchanged. With
`bm25=True` (the default) the same documents also get a memory-mapped BM25 index (`search.lexical`), which
`Searcher.search(..., mode="bm25" | "hybrid")` needs.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from twotower.io.output import mark_output
from twotower.models.encoder import TwoTowerEncoder
from twotower.search.commit import (
    checksums,
    collect_garbage,
    discard,
    disk_full,
    milvus_record,
    prepare_folder,
    writing_what,
)
from twotower.search.documents import documents_from_mapping, read_documents
from twotower.search.encoding import encode_in_batches, load_encoder_with_identity
from twotower.search.errors import DiskFullError, SearchError
from twotower.search.faiss_backend import FaissBackend
from twotower.search.kinds import IndexKind, kind_to_dict, make_kind
from twotower.search.lexical import build_bm25
from twotower.search.manifest import Manifest, documents_file, index_lock, write_manifest
from twotower.search.store import Document, DocumentStore

log = logging.getLogger(__name__)

BACKENDS = ("faiss", "milvus", "redis")


def _as_documents(collection: str | Path | Mapping[str, str] | Sequence[Document]) -> tuple[list[Document], list[str]]:
    if isinstance(collection, (str, Path)):
        return read_documents(collection), [str(Path(collection).resolve())]
    if isinstance(collection, Mapping):
        return documents_from_mapping(collection), []
    return list(collection), []


def build_index(
    checkpoint: str | Path,
    collection: str | Path | Mapping[str, str] | Sequence[Document],
    out: str | Path,
    kind: str | IndexKind = "flat",
    backend: str = "faiss",
    milvus_uri: str | None = None,
    batch_size: int = 2048,
    progress: bool = True,
    device: str | None = None,
    overwrite: bool = False,
    redis=None,
    bm25: bool = True,
) -> Manifest:
    """Encode every document with the checkpoint's document tower and write a complete index to `out`.

    `collection` is a file (`.tsv`, `.parquet`, `.jsonl`), a {id: text} mapping or a list of `Document`.
    `kind` is "flat" | "ivf" | "hnsw" or a configured kind (`IVFIndex(nprobe=64)`). `backend="milvus"` keeps the
    vectors in Milvus: `milvus_uri` is a server URI, or by default Milvus Lite in `out/milvus.db`; credentials
    in it (`user:password@`, `?token=`) are used but not written to the manifest.
    `backend="redis"` keeps them in a Redis 8 vector set: `redis` is a config file, mapping, URL or `RedisConfig`.
    Two builds into one folder run one after the other (`<out>.lock`); the later one's index is kept.
    `out` must be new, empty or an index; any other folder is refused unless `overwrite` (`twotower.io.output`).
    `bm25=False` skips the BM25 part: the index then serves dense search only.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    spec = make_kind(kind) if isinstance(kind, str) else kind
    folder = Path(out)
    prepare_folder(folder, overwrite)  # a foreign folder fails now, before the model loads
    if backend == "redis":  # so do an unreachable server and a taken index name
        from twotower.search.redis_config import check_before_build

        redis = check_before_build(redis, folder)
    encoder, identity = load_encoder_with_identity(checkpoint, device)
    documents, source = _as_documents(collection)
    if not documents:
        raise SearchError(f"no documents to index in {collection if source else 'the collection given'}")
    with index_lock(folder):
        return _build_locked(
            folder,
            encoder,
            identity,
            documents,
            source,
            spec,
            backend,
            milvus_uri,
            batch_size,
            progress,
            overwrite,
            redis,
            bm25,
        )


def _build_locked(
    folder: Path,
    encoder: TwoTowerEncoder,
    identity: dict,
    documents: list[Document],
    source: list[str],
    spec: IndexKind,
    backend: str,
    milvus_uri: str | None,
    batch_size: int,
    progress: bool,
    overwrite: bool,
    redis=None,
    bm25: bool = True,
) -> Manifest:
    previous = prepare_folder(folder, overwrite)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    mark_output(folder, "index")
    build_id = uuid.uuid4().hex[:12]
    vectors = None
    store = None
    started = time.perf_counter()
    try:
        store = DocumentStore(folder / documents_file(build_id))
        store.add(documents)
        texts = [d.text for d in documents]
        encode_s = 0.0
        t = time.perf_counter()
        for chunk in encode_in_batches(encoder, texts, batch_size, progress):
            encode_s += time.perf_counter() - t
            if vectors is None:
                vectors = _new_backend(
                    backend, spec, chunk.shape[1], len(documents), folder, build_id, milvus_uri, redis
                )
                if vectors.needs_training:
                    vectors.train(chunk)
            vectors.add(chunk)
            t = time.perf_counter()
        files = {store.path.name: 0, **vectors.save(folder, build_id)}
        bm25_record: dict = {}
        if bm25:
            bm25_record, bm25_files = build_bm25(folder, build_id, store, progress)
            files.update(bm25_files)
        store.close()
        files[store.path.name] = store.path.stat().st_size
        seconds = time.perf_counter() - started
        manifest = Manifest(
            backend=backend,
            index=kind_to_dict(spec),
            dim=int(chunk.shape[1]),
            count=len(documents),
            checkpoint=identity,
            build_id=build_id,
            files=files,
            checksums=checksums(folder, files),
            source=source,
            milvus=milvus_record(milvus_uri, vectors.collection) if backend == "milvus" else {},
            redis=vectors.record() if backend == "redis" else {},
            bm25=bm25_record,
            build={
                "seconds": round(seconds, 3),
                "encode_seconds": round(encode_s, 3),
                "passages_per_second": round(len(documents) / seconds, 1),
                "device": str(encoder.device),
            },
        )
        write_manifest(folder, manifest)
    except BaseException as exc:
        if store is not None:
            store.close()
        discard(folder, build_id, vectors)
        if vectors is not None:
            vectors.close()
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        if disk_full(exc):
            kept = "the previous index is unchanged and still serving" if previous else "no index was written"
            raise DiskFullError(
                f"disk full while building the index {folder}{writing_what(exc)}: nothing was committed, "
                f"{kept}; free some space and build again"
            ) from exc
        raise
    if backend == "redis":
        vectors.commit(folder, previous)  # claims the name, drops the vector sets of replaced builds
    vectors.close()
    collect_garbage(folder, manifest, previous, milvus_uri)
    return manifest


def _new_backend(
    backend: str, spec: IndexKind, dim: int, count: int, folder: Path, build_id: str, milvus_uri: str | None, redis=None
):
    if backend == "faiss":
        return FaissBackend.create(spec, dim, count)
    if backend == "redis":
        from twotower.search.redis_backend import RedisBackend

        return RedisBackend.create(redis, spec, dim, folder, build_id)
    from twotower.search.milvus_backend import MilvusBackend, resolve_uri

    return MilvusBackend.create(resolve_uri(milvus_uri or "milvus.db", folder), f"twotower_{build_id}", spec, dim)
