"""An id-addressed passage corpus on disk: any size, bounded memory, text fetched by pid or row when needed.

`Corpus.build(collection.tsv)` streams the TSV in Arrow blocks into `corpus.arrow` (an Arrow IPC file with
columns pid, text, in file order) plus an id index with no Python dict: `keys.npy` (the pids as sorted
fixed-width bytes) and `rows.npy` (the row of each sorted key), both memory-mapped and searched with
`np.searchsorted`. A build is written to a temporary folder and renamed into place with `_SUCCESS` inside it,
so a killed build never looks complete; the default place is the cache, keyed by the file's fingerprint.

`DictCorpus` gives a small in-memory {pid: text} the same API (tests, the HF parquet), and `as_corpus` turns
whatever a `Split` holds into one of the two, so callers can take either.

    corpus = Corpus.build("collection.tsv")
    corpus.texts(["7", "3"]); corpus.row("7"); "7" in corpus
    for pids, texts in corpus.iter_batches(65_536): ...
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from twotower.data.corpus_write import SCHEMA, write_corpus
from twotower.io.atomic import DONE, building
from twotower.io.checksum import ChecksumError, folder_checksums, log_rebuild, verify_or_record
from twotower.io.fingerprint import file_fingerprint
from twotower.io.paths import cache_dir, require
from twotower.retrieval.corpus_like import CorpusLike

__all__ = ["DONE", "Corpus", "CorpusLike"]

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the on-disk layout changes: old caches are then rebuilt, never misread


MAPPING_BATCH = 65_536  # rows per read when a corpus is iterated like a dict


class Corpus:
    """A memory-mapped corpus folder written by `Corpus.build`; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / DONE).exists():
            raise FileNotFoundError(f"{self.path} holds no finished corpus (no {DONE}); build it with Corpus.build")
        info = json.loads((self.path / DONE).read_text())
        # The text, the ids and the row map are checked against their checksums once per process.
        self.info = verify_or_record(self.path, DONE, info, "corpus file")
        self.fingerprint: str = self.info["fingerprint"]
        reader = pa.ipc.open_file(pa.memory_map(str(self.path / "corpus.arrow")))
        self._batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        self._starts = np.cumsum([0] + [len(b) for b in self._batches], dtype=np.int64)
        self._keys = np.load(self.path / "keys.npy", mmap_mode="r")
        self._rows = np.load(self.path / "rows.npy", mmap_mode="r")

    @classmethod
    def open(cls, path: str | Path) -> Corpus:
        """Memory-map a finished corpus folder (FileNotFoundError if it is missing or unfinished)."""
        return cls(path)

    @classmethod
    def build(
        cls,
        collection_tsv: str | Path,
        out_dir: str | Path | None = None,
        block_bytes: int = 16 << 20,
        progress: bool = False,
    ) -> Corpus:
        """Stream `collection_tsv` (pid TAB passage) into a corpus folder, or reuse the one already built.

        Blank passages are skipped and counted (`info["skipped_blank"]`); a duplicate pid raises, naming it.
        """
        collection_tsv = require(collection_tsv, "collection")
        fingerprint = file_fingerprint(collection_tsv)
        key = hashlib.sha1(f"{FORMAT}:{fingerprint}".encode()).hexdigest()[:16]
        out = Path(out_dir) if out_dir else cache_dir() / "corpus" / key
        if (out / DONE).exists():
            try:
                corpus = cls(out)
            except ChecksumError as exc:  # a cache: rebuilt, with one log line
                log_rebuild(exc, "corpus")
                corpus = None
            if corpus is not None and corpus.fingerprint == fingerprint:
                log.info("reusing the corpus of %s at %s (%d passages)", collection_tsv, out, len(corpus))
                return corpus
            if corpus is not None:
                log.info("%s was built from another version of %s: rebuilding", out, collection_tsv)
            shutil.rmtree(out)
        with building(out) as tmp:
            info = write_corpus(collection_tsv, tmp, block_bytes, progress)
            if file_fingerprint(collection_tsv) != fingerprint:  # free: hashed while it was read
                raise ValueError(f"{collection_tsv} changed while the corpus was built from it; build it again")
            info.update(fingerprint=fingerprint, source=str(collection_tsv), format=FORMAT)
            info["checksums"] = folder_checksums(tmp)  # corpus.arrow, keys.npy, rows.npy
            (tmp / DONE).write_text(json.dumps(info, indent=2))
        log.info(
            "built the corpus of %s at %s: %d passages, %d blank skipped",
            collection_tsv,
            out,
            info["rows"],
            info["skipped_blank"],
        )
        return cls(out)

    # -- lookups ------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __contains__(self, pid: object) -> bool:
        return isinstance(pid, str) and self.find([pid])[0] >= 0

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, {len(self):,} passages)"

    # -- read-only mapping view: code written for a {pid: text} dict reads a corpus unchanged, streaming --

    def __getitem__(self, pid: str) -> str:
        return self.texts([pid])[0]

    def __iter__(self) -> Iterator[str]:
        for pids, _ in self.iter_batches(MAPPING_BATCH):
            yield from pids

    def keys(self) -> Iterator[str]:
        return iter(self)

    def values(self) -> Iterator[str]:
        for _, texts in self.iter_batches(MAPPING_BATCH):
            yield from texts

    def items(self) -> Iterator[tuple[str, str]]:
        for pids, texts in self.iter_batches(MAPPING_BATCH):
            yield from zip(pids, texts)

    @property
    def pids(self) -> pa.ChunkedArray:
        """Every pid in file (row) order, as Arrow strings backed by the memory map."""
        return pa.chunked_array([b.column(0) for b in self._batches], pa.string())

    def pid(self, row: int) -> str:
        chunk, offset = self._locate(int(row))
        return self._batches[chunk].column(0)[offset].as_py()

    def row(self, pid: str) -> int:
        return int(self.rows([pid])[0])

    def rows(self, pids: Sequence[str]) -> np.ndarray:
        """Row numbers of `pids` (int64, same order); a pid not in the corpus raises KeyError naming it."""
        found = self.find(pids)
        if (found < 0).any():
            missing = [p for p, r in zip(pids, found) if r < 0]
            raise KeyError(
                f"passage id {missing[0]!r} is not in the corpus {self.path}"
                + (f" ({len(missing)} missing ids in all)" if len(missing) > 1 else "")
            )
        return found

    def texts(self, pids: Sequence[str]) -> list[str]:
        return self.text_at(self.rows(pids))

    def text_at(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        """Texts of the given rows, in that order."""
        return self._take(1, rows)

    def pids_at(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        """Pids of the given rows, in that order."""
        return self._take(0, rows)

    def _take(self, column: int, rows: Sequence[int] | np.ndarray) -> list[str]:
        # Per record batch, never a take on the whole column: that could concatenate (copy) all of it.
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range 0..{len(self) - 1} of {self.path}")
        out: list[str] = [""] * len(rows)
        chunk_of = np.searchsorted(self._starts, rows, side="right") - 1
        for chunk in np.unique(chunk_of):
            where = np.flatnonzero(chunk_of == chunk)
            local = pa.array(rows[where] - self._starts[chunk])
            for i, value in zip(where.tolist(), self._batches[chunk].column(column).take(local).to_pylist()):
                out[i] = value
        return out

    def iter_batches(self, size: int) -> Iterator[tuple[list[str], list[str]]]:
        """(pids, texts) of `size` rows at a time (the last may be shorter), in file order.

        A scan reads the file (one record batch in memory at a time) instead of touching the memory map: mapped
        pages would stay in this process' RSS, growing with the corpus, where read pages stay in the page cache.
        """
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        with pa.OSFile(str(self.path / "corpus.arrow")) as source:
            reader = pa.ipc.open_file(source)
            pending: list[pa.RecordBatch] = []
            n_pending = 0
            for i in range(reader.num_record_batches):
                pending.append(reader.get_batch(i))
                n_pending += len(pending[-1])
                while n_pending >= size or (i == reader.num_record_batches - 1 and n_pending):
                    table = pa.Table.from_batches(pending, SCHEMA)
                    part, rest = table.slice(0, size), table.slice(size)
                    yield part.column(0).to_pylist(), part.column(1).to_pylist()
                    pending, n_pending = rest.to_batches(), len(rest)

    def _locate(self, row: int) -> tuple[int, int]:
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} out of range 0..{len(self) - 1} of {self.path}")
        chunk = int(np.searchsorted(self._starts, row, side="right") - 1)
        return chunk, row - int(self._starts[chunk])

    def find(self, pids: Sequence[str]) -> np.ndarray:
        """Row of each pid (int64), -1 where the pid is not in the corpus: `rows` without the KeyError."""
        if not len(self._keys):
            return np.full(len(pids), -1, dtype=np.int64)
        width = self._keys.dtype.itemsize
        encoded = [p.encode() for p in pids]
        # A longer id cannot be stored; numpy would truncate it to `width` bytes and could match another id.
        fits = np.array([len(e) <= width and not e.endswith(b"\0") for e in encoded], dtype=bool)
        probe = np.array([e if ok else b"" for e, ok in zip(encoded, fits)], dtype=self._keys.dtype)
        at = np.minimum(np.searchsorted(self._keys, probe), len(self._keys) - 1)
        hit = fits & (self._keys[at] == probe)
        return np.where(hit, self._rows[at], -1).astype(np.int64)
