"""Retrieval primitives every wing shares, below `data/` and `models/`: exact top-k (`exact`), the one BM25 home
(`bm25`, written by `bm25_write`), text splitting (`text`), resumable embedding caches (`embedding_cache`) and
what a corpus must offer (`corpus_like`). Nothing here imports `data/`, `models/` or above."""
