"""Vectors in a faiss index file (`vectors-<build id>.faiss`) inside the index folder; searched on a GPU when faiss has one."""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

from twotower.retrieval.exact import gpu_available
from twotower.search.errors import IndexCorruptError
from twotower.search.kinds import HNSWIndex, IndexKind, IVFIndex

log = logging.getLogger(__name__)


def vectors_file(build_id: str) -> str:
    return f"vectors-{build_id}.faiss"


# k-means quality stops improving long before this many points a centroid; training time does not.
TRAIN_POINTS_PER_LIST = 64


class FaissBackend:
    name = "faiss"

    def __init__(self, index: faiss.Index, spec: IndexKind, use_gpu: bool | None = None) -> None:
        self.index = index
        self.spec = spec
        self._gpu_index = None
        if use_gpu if use_gpu is not None else gpu_available():
            self._gpu_index = self._to_gpu(index)
        self.configure(spec)

    @classmethod
    def create(cls, spec: IndexKind, dim: int, expected_count: int, use_gpu: bool | None = None) -> FaissBackend:
        index = faiss.index_factory(dim, spec.faiss_factory(expected_count), faiss.METRIC_INNER_PRODUCT)
        return cls(index, spec, use_gpu=False if use_gpu is None else use_gpu)

    @classmethod
    def load(cls, folder: str | Path, build_id: str, spec: IndexKind, use_gpu: bool | None = None) -> FaissBackend:
        path = Path(folder) / vectors_file(build_id)
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:  # faiss reports a truncated or foreign file as a RuntimeError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IndexCorruptError(f"{path} is not a readable faiss index ({first}); rebuild the index") from None
        return cls(index, spec, use_gpu)

    def _to_gpu(self, index: faiss.Index):
        # Flat and IVF-Flat have GPU versions; HNSW and fast-scan PQ do not, and stay on the CPU.
        if isinstance(self.spec, HNSWIndex) or (isinstance(self.spec, IVFIndex) and self.spec.encoding != "flat"):
            return None
        try:
            return faiss.index_cpu_to_all_gpus(index)
        except (RuntimeError, AttributeError) as exc:
            log.warning("faiss index stays on the CPU: %s", exc)
            return None

    def configure(self, spec: IndexKind) -> None:
        """Apply search-time settings (nprobe, k_factor, ef_search) to the loaded index."""
        self.spec = spec
        index = faiss.downcast_index(self.index)
        if isinstance(spec, IVFIndex):
            faiss.extract_index_ivf(index).nprobe = spec.nprobe
            if isinstance(index, faiss.IndexRefine):
                index.k_factor = spec.k_factor
            if self._gpu_index is not None:
                faiss.GpuParameterSpace().set_index_parameter(self._gpu_index, "nprobe", spec.nprobe)
        elif isinstance(spec, HNSWIndex):
            index.hnsw.efSearch = spec.ef_search

    @property
    def device(self) -> str:
        return "GPU" if self._gpu_index is not None else "CPU"

    @property
    def needs_training(self) -> bool:
        return not self.index.is_trained

    def train(self, vectors: np.ndarray) -> None:
        sample = vectors
        if isinstance(self.spec, IVFIndex):
            limit = TRAIN_POINTS_PER_LIST * faiss.extract_index_ivf(self.index).nlist
            if len(vectors) > limit:
                sample = vectors[np.random.default_rng(0).choice(len(vectors), limit, replace=False)]
        self.index.train(np.ascontiguousarray(sample, dtype=np.float32))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add(vectors)
        if self._gpu_index is not None:
            self._gpu_index.add(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._gpu_index if self._gpu_index is not None else self.index
        k = max(1, min(k, len(self)))
        return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def save(self, folder: Path, build_id: str) -> dict[str, int]:
        path = Path(folder) / vectors_file(build_id)
        # Written through Python's file object, so a full disk is an OSError naming the file (faiss's own
        # writer reports every failure as a RuntimeError with no errno).
        try:
            with open(path, "wb") as fh:
                writer = faiss.PyCallbackIOWriter(fh.write)
                faiss.write_index(self.index, writer)
                del writer
        except OSError as exc:
            if exc.filename is None and exc.errno is not None:
                raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
            raise
        return {path.name: path.stat().st_size}

    def drop(self) -> None:
        pass  # nothing outside the index folder; the builder deletes this build's files

    def close(self) -> None:
        self._gpu_index = None
