"""`DictCorpus`, the `Corpus` API over an in-memory {pid: text}, and `as_corpus`, which gives either.

Code that reads passages takes any collection through `as_corpus`: a memory-mapped `Corpus` as is, a small
dict (tests, the HF parquet) wrapped without copying its texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa

from twotower.retrieval.corpus_like import CorpusLike


class DictCorpus:
    """The `Corpus` API over an in-memory {pid: text} (small collections: tests, the HF parquet)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._texts = list(mapping.values())
        self._pids = list(mapping.keys())
        self._row = {p: i for i, p in enumerate(self._pids)}
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """A hash of every (pid, text) in order (row numbers are part of the corpus), computed when first asked."""
        if self._fingerprint is None:
            digest = hashlib.sha1()
            for pid, text in zip(self._pids, self._texts):
                digest.update(f"{pid}\t{text}\n".encode())
            self._fingerprint = f"dict:{len(self._pids)}:{digest.hexdigest()[:16]}"
        return self._fingerprint

    def __len__(self) -> int:
        return len(self._pids)

    def __contains__(self, pid: object) -> bool:
        return pid in self._row

    def __repr__(self) -> str:
        return f"DictCorpus({len(self):,} passages)"

    @property
    def pids(self) -> pa.Array:
        return pa.array(self._pids, pa.string())

    def pid(self, row: int) -> str:
        return self._pids[row]

    def row(self, pid: str) -> int:
        try:
            return self._row[pid]
        except KeyError:
            raise KeyError(f"passage id {pid!r} is not in the corpus") from None

    def rows(self, pids: Sequence[str]) -> np.ndarray:
        return np.array([self.row(p) for p in pids], dtype=np.int64)

    def find(self, pids: Sequence[str]) -> np.ndarray:
        return np.array([self._row.get(p, -1) for p in pids], dtype=np.int64)

    def texts(self, pids: Sequence[str]) -> list[str]:
        return [self._texts[self.row(p)] for p in pids]

    def text_at(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self._texts[r] for r in np.asarray(rows, dtype=np.int64).reshape(-1).tolist()]

    def pids_at(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self._pids[r] for r in np.asarray(rows, dtype=np.int64).reshape(-1).tolist()]

    def iter_batches(self, size: int) -> Iterator[tuple[list[str], list[str]]]:
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        for start in range(0, len(self), size):
            yield self._pids[start : start + size], self._texts[start : start + size]


def as_corpus(collection: Mapping[str, str] | CorpusLike) -> CorpusLike:
    """A `Corpus`/`DictCorpus` as is; a {pid: text} dict wrapped in a `DictCorpus` (no copy of the texts)."""
    if hasattr(collection, "iter_batches"):
        return collection  # type: ignore[return-value]
    if isinstance(collection, Mapping):
        return DictCorpus(collection)
    raise TypeError(f"expected a Corpus, a DictCorpus or a {{pid: text}} mapping, got {type(collection).__name__}")
