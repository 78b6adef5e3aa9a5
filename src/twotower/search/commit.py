"""Committing an index folder: what a build may overwrite, the checksums and records a manifest keeps, and the
clean-up on either side of the commit (garbage after it, this build's own files when it fails before it).

The commit itself is `manifest.write_manifest`, one rename; everything here runs before or after it.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from twotower.io.checksum import folder_checksums
from twotower.io.output import check_output
from twotower.search.errors import IndexCorruptError
from twotower.search.manifest import MANIFEST, Manifest, read_manifest, redact_uri

log = logging.getLogger(__name__)

# What a folder may hold and still be (the remains of) an index; `bm25-*` are BM25 parts and their temp folders.
OWN_FILES = ("documents-*.sqlite", "vectors-*.faiss", MANIFEST, "milvus.db", "bm25-*", ".bm25-*")


def prepare_folder(folder: Path, overwrite: bool = False) -> Manifest | None:
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


def collect_garbage(folder: Path, manifest: Manifest, previous: Manifest | None, milvus_uri: str | None = None) -> None:
    """After a commit: delete files no manifest refers to, and the Milvus collection the old manifest named
    (reached with `milvus_uri`, credentials and all, when it is the same server)."""
    keep = set(manifest.files)
    for pattern in ("documents-*.sqlite", "vectors-*.faiss"):
        for path in folder.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)
    for path in folder.glob("bm25-*"):
        if path.is_dir() and path.name != manifest.bm25.get("folder"):
            shutil.rmtree(path, ignore_errors=True)
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


def discard(folder: Path, build_id: str, backend) -> None:
    """Remove what an uncommitted build or add `build_id` wrote: its files, its BM25 folder, its vectors."""
    for path in folder.glob(f"*-{build_id}.*"):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder / f"bm25-{build_id}", ignore_errors=True)
    if backend is not None:
        try:
            backend.drop()
        except Exception as exc:
            log.warning("could not remove the partial vectors of build %s: %s", build_id, exc)


def checksums(folder: Path, files: Mapping[str, int]) -> dict[str, str]:
    return folder_checksums(folder, files)


def milvus_record(milvus_uri: str | None, collection: str) -> dict:
    """What the manifest keeps of a Milvus location: the URI without credentials, and whether it had some."""
    uri, secret = redact_uri(milvus_uri or "milvus.db")
    return {"uri": uri, "collection": collection, **({"credentials": True} if secret else {})}


def disk_full(exc: BaseException | None) -> bool:
    """ENOSPC (or a quota) anywhere in the exception chain; SQLite reports it in its own words."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def writing_what(exc: BaseException) -> str:
    name = getattr(exc, "filename", None)
    return f" (writing {name})" if name else ""
