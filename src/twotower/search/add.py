"""Growing a committed index: `add_documents` (new passages: store, vectors, BM25) and `add_bm25` (a BM25 part
for an index built without one); each commits a new manifest atomically, like a build.

Both run holding `index_lock(folder)` against the manifest now on disk; on any failure this commit's files are
removed and the index on disk is as before.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from twotower.models.encoder import TwoTowerEncoder
from twotower.search.commit import checksums, collect_garbage, discard, disk_full, writing_what
from twotower.search.encoding import encode_in_batches
from twotower.search.errors import DiskFullError, DuplicateDocumentError, SearchError
from twotower.search.kinds import kind_from_dict, kind_to_dict
from twotower.search.lexical import build_bm25
from twotower.search.manifest import Manifest, check_files, documents_file, index_lock, read_manifest, write_manifest
from twotower.search.store import Document, DocumentStore


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
    Milvus rows are inserted above the committed count and deleted again if the commit does not happen. An index
    with a BM25 part gets it rebuilt over the whole grown store (`search.lexical`), under the same commit.
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
        bm25 = manifest.bm25
        if bm25:  # IDF and lengths are corpus statistics: the BM25 part is rebuilt over the grown store
            store = DocumentStore(new_store_path, readonly=True)
            try:
                bm25, bm25_files = build_bm25(folder, build_id, store, progress)
            finally:
                store.close()
            files.update(bm25_files)
        spec = kind_from_dict(manifest.index)
        new = Manifest(
            **{
                **manifest.__dict__,
                "index": kind_to_dict(spec),
                "count": committed + len(documents),
                "build_id": build_id,
                "files": files,
                "checksums": checksums(folder, files),
                "bm25": bm25,
            }
        )
        write_manifest(folder, new)
    except BaseException as exc:
        discard(folder, build_id, None)
        if hasattr(backend, "rollback"):
            backend.rollback(committed)
        if disk_full(exc):
            raise DiskFullError(
                f"disk full while adding documents to the index {folder}{writing_what(exc)}: nothing was "
                "committed, the index is unchanged and still serving; free some space and add again"
            ) from exc
        raise
    collect_garbage(folder, new, None)
    return new, len(documents)


def add_bm25(folder: str | Path, progress: bool = True, verify: bool = True) -> Manifest:
    """Give the index at `folder` a BM25 part (or rebuild a damaged one) from its own document store, without
    loading the model or touching the vectors; commits a new manifest naming it. Returns the manifest."""
    folder = Path(folder)
    with index_lock(folder):
        manifest = read_manifest(folder)
        # The BM25 part is being replaced: only the rest must be intact (so this also repairs a damaged one).
        rest = {name: size for name, size in manifest.files.items() if not name.startswith("bm25-")}
        check_files(
            folder,
            Manifest(**{**manifest.__dict__, "files": rest, "checksums": _only(manifest.checksums, rest)}),
            verify,
        )
        build_id = uuid.uuid4().hex[:12]
        store = DocumentStore(folder / documents_file(manifest.build_id), readonly=True)
        try:
            record, files = build_bm25(folder, build_id, store, progress)
            new = Manifest(
                **{
                    **manifest.__dict__,
                    "files": {**rest, **files},
                    "checksums": {**_only(manifest.checksums, rest), **checksums(folder, files)},
                }
            )
            new.bm25 = record
            write_manifest(folder, new)
        except BaseException as exc:
            shutil.rmtree(folder / f"bm25-{build_id}", ignore_errors=True)
            if disk_full(exc):
                raise DiskFullError(
                    f"disk full while adding a BM25 index to {folder}{writing_what(exc)}: nothing was committed"
                ) from exc
            raise
        finally:
            store.close()
        collect_garbage(folder, new, None)
    return new


def _only(sums: dict[str, str], files: dict[str, int]) -> dict[str, str]:
    return {name: digest for name, digest in sums.items() if name in files}
