"""What a vector backend does for the searcher; `faiss_backend` and `milvus_backend` both do exactly this.

Vectors are addressed by row number (0..n-1, insertion order), which the document store maps to ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class VectorBackend(Protocol):
    name: str

    @property
    def device(self) -> str:
        """Where searches run: "CPU", "GPU" or a Milvus URI."""

    def __len__(self) -> int: ...

    def add(self, vectors: np.ndarray) -> None:
        """Append `vectors` as rows len(self) .. len(self) + len(vectors) - 1."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores (nq, k), rows (nq, k)); rows are -1 where fewer than k vectors exist."""

    def save(self, folder: Path, build_id: str) -> dict[str, int]:
        """Write what the backend keeps in the index folder; return {file name: size in bytes} for the manifest."""

    def drop(self) -> None:
        """Remove what this build stored outside the index folder (a Milvus collection), after a failure."""

    def close(self) -> None: ...
