"""Build an index from a checkpoint and a collection, or add documents to one; both commit atomically.

    build_index("outputs/runs/.../checkpoints/best.pt", "../shared/data/msmarco-passage/collection.tsv",
                "outputs/index/msmarco", kind="hnsw")

Documents are encoded in batches (Rich progress bar, passages per second), stored in SQLite and added to the
vector backend under a fresh build id; `manifest.json` is replaced last. If anything fails before that, this
build's files (and Milvus collection) are removed and the previous index keeps serving unchanged.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from twotower.models.checkpoint import CheckpointError, file_hash, load_checkpoint, model_from_checkpoint
from twotower.models.encoder import TwoTowerEncoder
from twotower.search.documents import documents_from_mapping, read_documents
from twotower.search.errors import DuplicateDocumentError, IndexCorruptError, SearchError
from twotower.search.faiss_backend import FaissBackend
from twotower.search.kinds import IndexKind, kind_from_dict, kind_to_dict, make_kind
from twotower.search.manifest import MANIFEST, Manifest, documents_file, read_manifest, write_manifest
from twotower.search.store import Document, DocumentStore

log = logging.getLogger(__name__)

BACKENDS = ("faiss", "milvus")
# Encoded vectors are handed to the backend this many documents at a time, bounding memory on big corpora.
CHUNK = 65_536
OWN_FILES = ("documents-*.sqlite", "vectors-*.faiss", MANIFEST, "milvus.db")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder_with_identity(checkpoint: str | Path, device: str | None = None) -> tuple[TwoTowerEncoder, dict]:
    """The encoder and the identity the manifest records: resolved path, SHA-256, model config."""
    path = Path(checkpoint).resolve()
    payload = load_checkpoint(path)
    try:
        model, tokenizer = model_from_checkpoint(payload)
    except (TypeError, RuntimeError) as exc:  # a tower config or state dict the current code no longer accepts
        raise CheckpointError(f"{path}: cannot rebuild its model with this version of twotower ({exc})") from None
    cfg = payload["model_config"]
    device = device or default_device()
    encoder = TwoTowerEncoder(model.to(device), tokenizer, cfg["query_max_length"], cfg["doc_max_length"], device)
    # The tokenizer state carries a per-word IDF list: too long for a manifest and implied by the hash anyway.
    summary = {k: v for k, v in cfg.items() if k != "tokenizer"}
    summary["tokenizer"] = {"kind": cfg["tokenizer"].get("kind")}
    return encoder, {"path": str(path), "sha256": file_hash(path), "model_config": summary}


def encode_in_batches(encoder: TwoTowerEncoder, texts: Sequence[str], batch_size: int = 2048,
                      progress: bool = True, description: str = "encoding passages") -> Iterator[np.ndarray]:
    """Yield the document vectors of `texts` a chunk (CHUNK texts) at a time, in order, with one progress bar."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    started = time.perf_counter()
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(description, total=len(texts), rate="")
        done = 0
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start : start + CHUNK]
            # Sorting by length keeps padding low inside a batch; rows go back to file order below.
            order = np.argsort([len(t) for t in chunk], kind="stable")
            out: np.ndarray | None = None
            for b in range(0, len(chunk), batch_size):
                idx = order[b : b + batch_size]
                vecs = encoder.encode_documents([chunk[i] for i in idx], batch_size=batch_size)
                if out is None:
                    out = np.empty((len(chunk), vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                done += len(idx)
                bar.update(task, advance=len(idx), rate=f"{done / (time.perf_counter() - started):,.0f} passages/s")
            yield out


def _as_documents(collection: str | Path | Mapping[str, str] | Sequence[Document]) -> tuple[list[Document], list[str]]:
    if isinstance(collection, (str, Path)):
        return read_documents(collection), [str(Path(collection).resolve())]
    if isinstance(collection, Mapping):
        return documents_from_mapping(collection), []
    return list(collection), []


def _prepare_folder(folder: Path) -> Manifest | None:
    """The manifest of the index being replaced, if any; refuse to write into a folder that is something else."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise SearchError(f"{folder} is a file, not an index folder")
    try:
        return read_manifest(folder)
    except IndexCorruptError as exc:
        log.warning("replacing a damaged index: %s", exc)
        return None
    except FileNotFoundError:
        foreign = [p.name for p in folder.iterdir() if not any(p.match(pat) for pat in OWN_FILES)]
        if foreign:
            raise SearchError(f"{folder} exists and is not a twotower index (it holds {', '.join(sorted(foreign)[:3])}); "
                              "choose an empty or new folder") from None
        return None


def _collect_garbage(folder: Path, manifest: Manifest, previous: Manifest | None) -> None:
    """After a commit: delete files no manifest refers to, and the Milvus collection the old manifest named."""
    keep = set(manifest.files)
    for pattern in ("documents-*.sqlite", "vectors-*.faiss"):
        for path in folder.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)
    if previous and previous.milvus and previous.milvus != manifest.milvus:
        from twotower.search.milvus_backend import drop_collection, resolve_uri

        try:
            drop_collection(resolve_uri(previous.milvus["uri"], folder), previous.milvus["collection"])
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


def build_index(checkpoint: str | Path, collection: str | Path | Mapping[str, str] | Sequence[Document],
                out: str | Path, kind: str | IndexKind = "flat", backend: str = "faiss", milvus_uri: str | None = None,
                batch_size: int = 2048, progress: bool = True, device: str | None = None) -> Manifest:
    """Encode every document with the checkpoint's document tower and write a complete index to `out`.

    `collection` is a file (`.tsv`, `.parquet`, `.jsonl`), a {id: text} mapping or a list of `Document`.
    `kind` is "flat" | "ivf" | "hnsw" or a configured kind (`IVFIndex(nprobe=64)`). `backend="milvus"` keeps the
    vectors in Milvus: `milvus_uri` is a server URI, or by default Milvus Lite in `out/milvus.db`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    spec = make_kind(kind) if isinstance(kind, str) else kind
    folder = Path(out)
    previous = _prepare_folder(folder)
    created = not folder.exists()
    encoder, identity = load_encoder_with_identity(checkpoint, device)
    documents, source = _as_documents(collection)
    if not documents:
        raise SearchError(f"no documents to index in {collection if source else 'the collection given'}")
    folder.mkdir(parents=True, exist_ok=True)
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
                vectors = _new_backend(backend, spec, chunk.shape[1], len(documents), folder, build_id, milvus_uri)
                if vectors.needs_training:
                    vectors.train(chunk)
            vectors.add(chunk)
            t = time.perf_counter()
        files = {store.path.name: 0, **vectors.save(folder, build_id)}
        store.close()
        files[store.path.name] = store.path.stat().st_size
        seconds = time.perf_counter() - started
        manifest = Manifest(
            backend=backend, index=kind_to_dict(spec), dim=int(chunk.shape[1]), count=len(documents),
            checkpoint=identity, build_id=build_id, files=files, source=source,
            milvus={"uri": milvus_uri or "milvus.db", "collection": vectors.collection} if backend == "milvus" else {},
            build={"seconds": round(seconds, 3), "encode_seconds": round(encode_s, 3),
                   "passages_per_second": round(len(documents) / seconds, 1), "device": str(encoder.device)},
        )
        write_manifest(folder, manifest)
    except BaseException:
        if store is not None:
            store.close()
        _discard(folder, build_id, vectors)
        if vectors is not None:
            vectors.close()
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    vectors.close()
    _collect_garbage(folder, manifest, previous)
    return manifest


def _new_backend(backend: str, spec: IndexKind, dim: int, count: int, folder: Path, build_id: str, milvus_uri: str | None):
    if backend == "faiss":
        return FaissBackend.create(spec, dim, count)
    from twotower.search.milvus_backend import MilvusBackend, resolve_uri

    return MilvusBackend.create(resolve_uri(milvus_uri or "milvus.db", folder), f"twotower_{build_id}", spec, dim)


def add_documents(folder: str | Path, encoder: TwoTowerEncoder, manifest: Manifest, backend,
                  documents: Sequence[Document], skip_existing: bool = False, batch_size: int = 512,
                  progress: bool = False) -> tuple[Manifest, int]:
    """Append `documents` to a loaded index and commit a new manifest -> (manifest, number added).

    The document store is copied under a new build id and extended; faiss vectors are written to a new file;
    Milvus rows are inserted above the committed count and deleted again if the commit does not happen.
    """
    folder = Path(folder)
    old_store = DocumentStore(folder / documents_file(manifest.build_id), readonly=True)
    try:
        clash = old_store.existing_ids(d.id for d in documents)
    finally:
        old_store.close()
    if clash and not skip_existing:
        raise DuplicateDocumentError(f"{len(clash)} document id(s) are already in {folder}, e.g. {sorted(clash)[:3]}; "
                                     "pass skip_existing=True (--skip-existing) to add only the new ones")
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
        for chunk in encode_in_batches(encoder, [d.text for d in documents], batch_size, progress, "encoding new passages"):
            backend.add(chunk)
        files = {new_store_path.name: new_store_path.stat().st_size, **backend.save(folder, build_id)}
        spec = kind_from_dict(manifest.index)
        new = Manifest(**{**manifest.__dict__, "index": kind_to_dict(spec), "count": committed + len(documents),
                          "build_id": build_id, "files": files})
        write_manifest(folder, new)
    except BaseException:
        _discard(folder, build_id, None)
        if hasattr(backend, "rollback"):
            backend.rollback(committed)
        raise
    _collect_garbage(folder, new, None)
    return new, len(documents)
