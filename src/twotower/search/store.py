"""The document store: ids, texts and metadata in SQLite, addressed by the row number the vectors carry.

Vector indexes know rows 0..n-1 only; this table maps a row back to the document (id, text, metadata as
JSON). Row numbers are assigned in insertion order, so documents added later simply continue the count.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twotower.search.errors import DuplicateDocumentError, IndexCorruptError

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT
)
"""


@dataclass
class Document:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class DocumentStore:
    """`store.get([rows])` -> documents; `store.add(docs)` -> their new rows."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise IndexCorruptError(f"document store {self.path} is missing")
            uri = f"file:{self.path}?mode=ro&immutable=1"
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.conn = sqlite3.connect(self.path, check_same_thread=False)
            self.conn.execute(SCHEMA)
        try:
            self._count = self.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"document store {self.path} is unreadable ({exc}); rebuild the index") from None

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self.conn.close()

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        found: set[str] = set()
        for start in range(0, len(ids), 900):  # SQLite caps bound parameters
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.conn.execute(f"SELECT id FROM documents WHERE id IN ({marks})", chunk))
        return found

    def add(self, documents: Sequence[Document]) -> list[int]:
        """Append documents in one transaction; any id already stored (or repeated) aborts the whole add."""
        seen: set[str] = set()
        repeated = [d.id for d in documents if d.id in seen or seen.add(d.id)]
        if repeated:
            raise DuplicateDocumentError(
                f"document id {repeated[0]!r} appears more than once ({len(repeated)} repeats)"
            )
        clash = self.existing_ids(seen)
        if clash:
            example = sorted(clash)[:3]
            raise DuplicateDocumentError(f"{len(clash)} document id(s) are already in the index, e.g. {example}")
        start = self._count
        rows = list(range(start, start + len(documents)))
        with self.conn:
            self.conn.executemany(
                "INSERT INTO documents (row, id, text, metadata) VALUES (?, ?, ?, ?)",
                ((r, d.id, d.text, json.dumps(d.metadata) if d.metadata else None) for r, d in zip(rows, documents)),
            )
        self._count += len(documents)
        return rows

    def get(self, rows: Sequence[int]) -> list[Document | None]:
        """Documents for `rows`, in that order; a row the store does not have gives None."""
        rows = [int(r) for r in rows]
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = {
            r: Document(i, t, json.loads(m) if m else {})
            for r, i, t, m in self.conn.execute(
                f"SELECT row, id, text, metadata FROM documents WHERE row IN ({marks})", rows
            )
        }
        return [found.get(r) for r in rows]

    def ids_at(self, rows: Sequence[int]) -> list[str | None]:
        """The document id of each of `rows`, in that order (None for a row the store does not have)."""
        found: dict[int, str] = {}
        rows = [int(r) for r in rows]
        for start in range(0, len(rows), 900):
            chunk = rows[start : start + 900]
            marks = ",".join("?" * len(chunk))
            found.update(self.conn.execute(f"SELECT row, id FROM documents WHERE row IN ({marks})", chunk))
        return [found.get(r) for r in rows]

    def iter_texts(self, size: int) -> Iterator[tuple[list[str], list[str]]]:
        """(ids, texts) of every document in row order, `size` at a time: memory is one batch, not the store."""
        for start in range(0, self._count, size):
            batch = self.conn.execute(
                "SELECT id, text FROM documents WHERE row >= ? AND row < ? ORDER BY row", (start, start + size)
            ).fetchall()
            yield [i for i, _ in batch], [t for _, t in batch]

    def rows_of(self, ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for start in range(0, len(ids), 900):
            chunk = list(ids[start : start + 900])
            marks = ",".join("?" * len(chunk))
            out.update(self.conn.execute(f"SELECT id, row FROM documents WHERE id IN ({marks})", chunk))
        return out
