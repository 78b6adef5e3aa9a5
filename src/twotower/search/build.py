"""Build an index from a checkpoint and a collection, or add documents to one; both commit atomically.

    build_index("outputs/runs/.../checkpoints/best.pt", "../shared/data/msmarco-passage/collection.tsv",
                "outputs/index/msmarco", kind="hnsw")

Documents are encoded in batches (Rich progress bar, passages per second), stored in SQLite and added to the
vector backend under a fresh build id; `manifest.json` is replaced last. If anything fails before that, this
build's files (and Milvus collection) are removed and the previous index keeps serving unchanged.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from twotower.io.output import check_output, mark_output
from twotower.models.encoder import TwoTowerEncoder
from twotower.search.documents import documents_from_mapping, read_documents
from twotower.search.encoding import encode_in_batches, load_encoder_with_identity
from twotower.search.errors import DiskFullError, DuplicateDocumentError, IndexCorruptError, SearchError
from twotower.search.faiss_backend import FaissBackend
from twotower.search.kinds import IndexKind, kind_from_dict, kind_to_dict, make_kind
from twotower.search.manifest import (
    MANIFEST,
    Manifest,
    documents_file,
    file_sha256,
    index_lock,
    read_manifest,
    redact_uri,
    write_manifest,
)
from twotower.search.store import Document, DocumentStore

log = logging.getLogger(__name__)

BACKENDS = ("faiss", "milvus", "redis")
OWN_FILES = ("documents-*.sqlite", "vectors-*.faiss", MANIFEST, "milvus.db")


def _as_documents(collection: str | Path | Mapping[str, str] | Sequence[Document]) -> tuple[list[Document], list[str]]:
    if isinstance(collection, (str, Path)):
        return read_documents(collection), [str(Path(collection).resolve())]
    if isinstance(collection, Mapping):
        return documents_from_mapping(collection), []
    return list(collection), []


def _prepare_folder(folder: Path, overwrite: bool = False) -> Manifest | None:
    """The manifest of the index being replaced, if any; refuse a folder that is something else (unless
    `overwrite`: see `twotower.io.output`)."""
    check_output(folder, "index", overwrite=overwrite, recognise=_an_index, noun="index")
    try:
        return read_manifest(folder)
    except IndexCorruptError as exc:
        log.warning("replacing a damaged index: %s", exc)
    except FileNotFoundError:
        pass
    return None


def _an_index(folder: Path) -> bool:
    """An index built before the output marker existed: a readable manifest, or only our files and no manifest."""
    try:
        return read_manifest(folder) is not None
    except IndexCorruptError:
        return False
    except FileNotFoundError:
        return all(any(p.match(pat) for pat in OWN_FILES) and p.name != MANIFEST for p in folder.iterdir())


def _collect_garbage(
    folder: Path, manifest: Manifest, previous: Manifest | None, milvus_uri: str | None = None
) -> None:
    """After a commit: delete files no manifest refers to, and the Milvus collection the old manifest named
    (reached with `milvus_uri`, credentials and all, when it is the same server)."""
    keep = set(manifest.files)
    for pattern in ("documents-*.sqlite", "vectors-*.faiss"):
        for path in folder.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)
    if previous and previous.milvus and previous.milvus != manifest.milvus:
        from twotower.search.milvus_backend import drop_collection, resolve_uri

        try:
            uri = (
                milvus_uri
                if milvus_uri and redact_uri(milvus_uri)[0] == previous.milvus["uri"]
                else previous.milvus["uri"]
            )
            drop_collection(resolve_uri(uri, folder), previous.milvus["collection"])
        except Exception as exc:  # the new index is committed; a stale collection is only wasted space
            log.warning("could not drop the previous Milvus collection %s: %s", previous.milvus["collection"], exc)


def _discard(folder: Path, build_id: str, backend) -> None:
    for path in folder.glob(f"*-{build_id}.*"):
        path.unlink(missing_ok=True)
    if backend is not None:
        try:
            backend.drop()
        except Exception as exc:
            log.warning("could not remove the partial vectors of build %s: %s", build_id, exc)


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
) -> Manifest:
    """Encode every document with the checkpoint's document tower and write a complete index to `out`.

    `collection` is a file (`.tsv`, `.parquet`, `.jsonl`), a {id: text} mapping or a list of `Document`.
    `kind` is "flat" | "ivf" | "hnsw" or a configured kind (`IVFIndex(nprobe=64)`). `backend="milvus"` keeps the
    vectors in Milvus: `milvus_uri` is a server URI, or by default Milvus Lite in `out/milvus.db`; credentials
    in it (`user:password@`, `?token=`) are used but not written to the manifest.
    `backend="redis"` keeps them in a Redis 8 vector set: `redis` is a config file, mapping, URL or `RedisConfig`.
    Two builds into one folder run one after the other (`<out>.lock`); the later one's index is kept.
    `out` must be new, empty or an index; any other folder is refused unless `overwrite` (`twotower.io.output`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    spec = make_kind(kind) if isinstance(kind, str) else kind
    folder = Path(out)
    _prepare_folder(folder, overwrite)  # a foreign folder fails now, before the model loads
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
) -> Manifest:
    previous = _prepare_folder(folder, overwrite)
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
            sha256=_checksums(folder, files),
            source=source,
            milvus=_milvus_record(milvus_uri, vectors.collection) if backend == "milvus" else {},
            redis=vectors.record() if backend == "redis" else {},
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
        _discard(folder, build_id, vectors)
        if vectors is not None:
            vectors.close()
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        if _disk_full(exc):
            kept = "the previous index is unchanged and still serving" if previous else "no index was written"
            raise DiskFullError(
                f"disk full while building the index {folder}{_filename(exc)}: nothing was committed, "
                f"{kept}; free some space and build again"
            ) from exc
        raise
    if backend == "redis":
        vectors.commit(folder, previous)  # claims the name, drops the vector sets of replaced builds
    vectors.close()
    _collect_garbage(folder, manifest, previous, milvus_uri)
    return manifest


def _checksums(folder: Path, files: Mapping[str, int]) -> dict[str, str]:
    return {name: file_sha256(folder / name) for name in files}


def _milvus_record(milvus_uri: str | None, collection: str) -> dict:
    """What the manifest keeps of a Milvus location: the URI without credentials, and whether it had some."""
    uri, secret = redact_uri(milvus_uri or "milvus.db")
    return {"uri": uri, "collection": collection, **({"credentials": True} if secret else {})}


def _disk_full(exc: BaseException | None) -> bool:
    """ENOSPC (or a quota) anywhere in the exception chain; SQLite reports it in its own words."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _filename(exc: BaseException) -> str:
    name = getattr(exc, "filename", None)
    return f" (writing {name})" if name else ""


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


def add_documents(
    folder: str | Path,
    encoder: TwoTowerEncoder,
    manifest: Manifest,
    backend,
    documents: Sequence[Document],
    skip_existing: bool = False,
    batch_size: int = 512,
    progress: bool = False,
) -> tuple[Manifest, int]:
    """Append `documents` to a loaded index and commit a new manifest -> (manifest, number added).

    The document store is copied under a new build id and extended; faiss vectors are written to a new file;
    Milvus rows are inserted above the committed count and deleted again if the commit does not happen.
    Call it holding `index_lock(folder)` (`Searcher.add` does), with the manifest now on disk: an add based on
    an older manifest would drop what was committed since, so it is refused.
    """
    folder = Path(folder)
    current = read_manifest(folder)
    if current.build_id != manifest.build_id:
        raise SearchError(
            f"{folder} changed since it was loaded (build {manifest.build_id} -> {current.build_id}); "
            "load it again and repeat the add"
        )
    old_store = DocumentStore(folder / documents_file(manifest.build_id), readonly=True)
    try:
        clash = old_store.existing_ids(d.id for d in documents)
    finally:
        old_store.close()
    if clash and not skip_existing:
        raise DuplicateDocumentError(
            f"{len(clash)} document id(s) are already in {folder}, e.g. {sorted(clash)[:3]}; "
            "pass skip_existing=True (--skip-existing) to add only the new ones"
        )
    documents = [d for d in documents if d.id not in clash]
    if not documents:
        return manifest, 0
    build_id = uuid.uuid4().hex[:12]
    new_store_path = folder / documents_file(build_id)
    committed = manifest.count
    try:
        shutil.copyfile(folder / documents_file(manifest.build_id), new_store_path)
        store = DocumentStore(new_store_path)
        try:
            store.add(documents)
        finally:
            store.close()
        for chunk in encode_in_batches(
            encoder, [d.text for d in documents], batch_size, progress, "encoding new passages"
        ):
            backend.add(chunk)
        files = {new_store_path.name: new_store_path.stat().st_size, **backend.save(folder, build_id)}
        spec = kind_from_dict(manifest.index)
        new = Manifest(
            **{
                **manifest.__dict__,
                "index": kind_to_dict(spec),
                "count": committed + len(documents),
                "build_id": build_id,
                "files": files,
                "sha256": _checksums(folder, files),
            }
        )
        write_manifest(folder, new)
    except BaseException as exc:
        _discard(folder, build_id, None)
        if hasattr(backend, "rollback"):
            backend.rollback(committed)
        if _disk_full(exc):
            raise DiskFullError(
                f"disk full while adding documents to the index {folder}{_filename(exc)}: nothing was "
                "committed, the index is unchanged and still serving; free some space and add again"
            ) from exc
        raise
    _collect_garbage(folder, new, None)
    return new, len(documents)
