"""Exact inner-product search with faiss (on a GPU when faiss has one), used by evaluation."""

from __future__ import annotations

import faiss
import numpy as np


def gpu_available() -> bool:
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def exact_search(documents: np.ndarray, queries: np.ndarray, k: int, use_gpu: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents by inner product for each query -> (scores (nq, k), row indices (nq, k))."""
    documents = np.ascontiguousarray(documents, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if documents.ndim != 2 or queries.ndim != 2 or documents.shape[1] != queries.shape[1]:
        raise ValueError(f"documents {documents.shape} and queries {queries.shape} must be 2-D with one dimension")
    index = faiss.IndexFlatIP(documents.shape[1])
    if use_gpu if use_gpu is not None else gpu_available():
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(documents)
    return index.search(queries, min(k, len(documents)))
