"""The BM25 part of an index folder: `bm25-<build id>/`, a `twotower.retrieval.bm25` index (the one BM25 home:
Lucene BM25, bm25s' tokeniser and English stop-words, memory-mapped) of the store's documents in row order, so a
BM25 hit is a row of the same store the vectors point into.

It is written with each build (`build_index(..., bm25=True)`, the default) and rebuilt over the whole store by
each add: BM25's IDF and average length are corpus statistics, so appending would leave the old rows scored
with stale ones; a rebuild reads the store a chunk at a time (bounded memory) and takes about a second per
25,000 passages. `add_bm25(folder)` (`twotower index --add-bm25 --out DIR`) gives an index built before this
existed a BM25 part without re-encoding anything.

The manifest's `bm25` record names the folder and the corpus fingerprint it was built for; its files are
listed, sized and hashed in `files` / `checksums` like every other file of the index.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from twotower.retrieval.bm25 import SETTINGS, BM25Index
from twotower.search.errors import IndexCorruptError, ModeUnavailableError
from twotower.search.manifest import Manifest
from twotower.search.store import DocumentStore

CHUNK = 25_000  # passages tokenised at a time while building


class StoreCorpus:
    """The `CorpusLike` side `BM25Index` needs of a document store: its length, a fingerprint, and its
    (ids, texts) in row order a chunk at a time."""

    def __init__(self, store: DocumentStore, fingerprint: str) -> None:
        self.store = store
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.store)

    def iter_batches(self, size: int) -> Iterator[tuple[list[str], list[str]]]:
        return self.store.iter_texts(size)


def bm25_folder(build_id: str) -> str:
    return f"bm25-{build_id}"


def build_bm25(folder: Path, build_id: str, store: DocumentStore, progress: bool = False) -> tuple[dict, dict]:
    """Index `store` into `folder/bm25-<build_id>` -> (the manifest's `bm25` record, {relative file: bytes})."""
    name = bm25_folder(build_id)
    started = time.perf_counter()
    corpus = StoreCorpus(store, f"twotower-index:{build_id}:{len(store)}")
    index = BM25Index.build(corpus, folder / name, chunk_size=CHUNK, progress=progress)
    record = {
        "folder": name,
        "corpus": corpus.fingerprint,
        "settings": dict(SETTINGS),
        "count": len(index),
        "seconds": round(time.perf_counter() - started, 3),
    }
    files = {f"{name}/{p.name}": p.stat().st_size for p in sorted((folder / name).iterdir()) if p.is_file()}
    return record, files


def open_bm25(folder: Path, manifest: Manifest, store: DocumentStore) -> BM25Index | None:
    """The index's BM25 part, memory-mapped; None for an index built without one."""
    record = manifest.bm25
    if not record:
        return None
    try:
        index = BM25Index(folder / record["folder"], StoreCorpus(store, record["corpus"]))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise IndexCorruptError(f"index {folder}: its BM25 part is unreadable ({exc}); rebuild the index") from None
    if len(index) != manifest.count:
        raise IndexCorruptError(
            f"index {folder}: its BM25 part holds {len(index):,} passages, the manifest says {manifest.count:,}; "
            f"rebuild it with `twotower index --add-bm25 --out {folder}`"
        )
    return index


def no_bm25(folder: Path, mode: str) -> ModeUnavailableError:
    """The one-line refusal of `mode` on an index that has no BM25 part, with the command that adds one."""
    return ModeUnavailableError(
        f"--mode {mode} needs a BM25 index, and {folder} was built without one (by an older twotower, or with "
        f"--no-bm25); add it without re-encoding: `twotower index --add-bm25 --out {folder}` (or rebuild the index)"
    )
