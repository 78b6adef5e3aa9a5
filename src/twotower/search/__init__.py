"""Search: turn a checkpoint into a search engine and query it from Python or the terminal.

    from twotower.search import Searcher, build_index
    build_index("outputs/runs/<run>/checkpoints/best.pt", "../shared/data/msmarco-passage/collection.tsv",
                "outputs/index/msmarco", kind="hnsw")            # or backend="milvus"
    searcher = Searcher.load("outputs/index/msmarco")
    searcher.search(["cooking an egg"], k=10)[0].ids
    searcher.search("cooking an egg", mode="hybrid")            # or "bm25"; searcher.modes lists them

Layout of an index folder: `manifest.json` (model identity, kind, counts, file sizes and checksums),
`documents-<id>.sqlite` (ids, texts, metadata) and `vectors-<id>.faiss`, or a Milvus collection (`milvus.db`
for Milvus Lite), and `bm25-<id>/` (the BM25 part, memory-mapped); writers hold the lock file `<folder>.lock` beside it.
"""

from twotower.search.add import add_bm25
from twotower.search.build import build_index
from twotower.search.errors import (
    DiskFullError,
    DuplicateDocumentError,
    EmptyQueryError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    ModeUnavailableError,
    SearchError,
)
from twotower.search.kinds import FlatIndex, HNSWIndex, IVFIndex, make_kind
from twotower.search.manifest import Manifest, read_manifest
from twotower.search.searcher import MODES, Hit, Results, Searcher
from twotower.search.store import Document

__all__ = [
    "Searcher",
    "Results",
    "Hit",
    "Document",
    "build_index",
    "add_bm25",
    "MODES",
    "ModeUnavailableError",
    "Manifest",
    "read_manifest",
    "FlatIndex",
    "IVFIndex",
    "HNSWIndex",
    "make_kind",
    "SearchError",
    "IndexNotFoundError",
    "IndexCorruptError",
    "IndexMismatchError",
    "EmptyQueryError",
    "DuplicateDocumentError",
    "DiskFullError",
]
