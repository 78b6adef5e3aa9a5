"""Deep memory: a query adapter, trained from (query, relevant document) pairs, over a local vector store.

    from twotower.deep_memory import VectorStore
    db = VectorStore("my_store")                      # all-MiniLM-L6-v2 by default, offline
    db.add(texts, ids=ids, metadata=metadata)
    job_id = db.deep_memory.train(queries=queries, relevance=[[("doc_id", 1.0)], ...])
    db.deep_memory.status(job_id)
    db.search(embedding_data=["a question"], k=4, deep_memory=True)

See docs/deep_memory.md.
"""

from twotower.deep_memory.embeddings import (
    EmbeddingDimensionError,
    GloveMeanEmbedding,
    HashingEmbedding,
    MiniLMEmbedding,
)
from twotower.deep_memory.memory import DeepMemory, UnknownIdsError
from twotower.deep_memory.store import VectorStore
from twotower.deep_memory.training_data import create_training_data

__all__ = [
    "VectorStore",
    "DeepMemory",
    "UnknownIdsError",
    "EmbeddingDimensionError",
    "MiniLMEmbedding",
    "GloveMeanEmbedding",
    "HashingEmbedding",
    "create_training_data",
]
