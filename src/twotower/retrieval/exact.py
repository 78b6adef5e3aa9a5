"""Exact top-k search: every query against every document, by inner product or squared L2 distance.

The one implementation of brute-force search in twotower (evaluation, baselines, dense negative mining, the
Deep Memory store and its validation, emb_opt's in-memory vector database all call `exact_search`):

* many queries: faiss's blocked BLAS scan with a heap per query (`faiss.knn`, no index built, no copy of the
  documents); on a GPU when faiss has one;
* a few queries (below `FEW_QUERIES`): a matrix-vector product and `torch.topk`. faiss starts an OpenMP team for
  every call, which costs more than the search itself for one query on a shared CPU (0.3 ms against 0.5 to
  15 ms for one query over 10k x 384 on a loaded 2-core machine).
"""

from __future__ import annotations

import functools
import warnings

import faiss
import numpy as np

METRICS = ("ip", "l2")
# Query counts below this take the torch path (see the module docstring).
FEW_QUERIES = 16


def gpu_available() -> bool:
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def exact_search(
    documents: np.ndarray, queries: np.ndarray, k: int, use_gpu: bool | None = None, metric: str = "ip"
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents of each query -> (scores (nq, k'), row indices (nq, k')), best first, k' = min(k, n).

    `metric="ip"`: scores are inner products, largest first; `metric="l2"`: squared L2 distances, smallest first.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    documents = np.asarray(documents)
    queries = np.asarray(queries)
    if documents.ndim != 2 or queries.ndim != 2 or documents.shape[1] != queries.shape[1]:
        raise ValueError(f"documents {documents.shape} and queries {queries.shape} must be 2-D with one dimension")
    k = min(k, len(documents))
    if k < 1 or len(queries) == 0:
        return np.zeros((len(queries), max(k, 0)), np.float32), np.zeros((len(queries), max(k, 0)), np.int64)
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    if use_gpu if use_gpu is not None else gpu_available():
        # No index to build and copy per call (evaluation calls this once per corpus chunk): brute-force kNN on
        # the GPU with one set of resources for the process.
        return faiss.knn_gpu(
            _gpu_resources(),
            np.ascontiguousarray(queries, dtype=np.float32),
            np.ascontiguousarray(documents, dtype=np.float32),
            k,
            metric=faiss_metric,
        )
    if len(queries) < FEW_QUERIES:
        return _torch_search(documents, queries, k, metric)
    return faiss.knn(
        np.ascontiguousarray(queries, dtype=np.float32),
        np.ascontiguousarray(documents, dtype=np.float32),
        k,
        metric=faiss_metric,
    )


@functools.cache
def _gpu_resources():
    return faiss.StandardGpuResources()


def _torch_search(documents: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    docs = np.ascontiguousarray(documents, dtype=np.float32)
    with warnings.catch_warnings():
        # A store hands out its matrix read-only; torch warns on wrapping it, but it is only read here.
        warnings.simplefilter("ignore", UserWarning)
        docs_t = torch.from_numpy(docs)
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    with torch.no_grad():
        scores = q @ docs_t.T
        if metric == "l2":
            scores = (docs_t * docs_t).sum(1)[None, :] - 2 * scores + (q * q).sum(1, keepdim=True)
            top, rows = torch.topk(scores, k, dim=1, largest=False)
            return top.clamp_min(0).numpy(), rows.numpy()
        top, rows = torch.topk(scores, k, dim=1)
    return top.numpy(), rows.numpy()
