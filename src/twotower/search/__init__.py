"""Search: turn a checkpoint into a search engine and query it from Python or the terminal.

    from twotower.search import Searcher, build_index
    build_index("outputs/runs/<run>/checkpoints/best.pt", "../shared/data/msmarco-passage/collection.tsv",
                "outputs/index/msmarco", kind="hnsw")            # or backend="milvus"
    searcher = Searcher.load("outputs/index/msmarco")
    searcher.search(["cooking an egg"], k=10)[0].ids

Layout of an index folder: `manifest.json` (model identity, kind, counts, file sizes and SHA-256),
`documents-<id>.sqlite` (ids, texts, metadata) and `vectors-<id>.faiss`, or a Milvus collection (`milvus.db`
for Milvus Lite); writers hold the lock file `<folder>.lock` beside it.
"""

from twotower.search.build import build_index
from twotower.search.errors import (
    DiskFullError,
    DuplicateDocumentError,
    EmptyQueryError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    SearchError,
)
from twotower.search.kinds import FlatIndex, HNSWIndex, IVFIndex, make_kind
from twotower.search.manifest import Manifest, read_manifest
from twotower.search.searcher import Hit, Results, Searcher
from twotower.search.store import Document

__all__ = [
    "Searcher",
    "Results",
    "Hit",
    "Document",
    "build_index",
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
