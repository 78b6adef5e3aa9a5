"""A triplet set on disk: parquet shards of ids and `_SUCCESS.json`, which lists each shard with its checksum.

    with triplet_lock(out):                    # one builder per set; a second training waits, then reuses it
        if not finished(out):                  # every listed shard present and intact, else one log line
            writer = ShardWriter(out, config)  # ... writer.add(...) per row ...
            writer.finish(source)

Shards are written one by one through a temp file, hashed as they are written, and `_SUCCESS.json` last, so a
crash never leaves a half-written set that looks complete, and a finished set with a missing or damaged shard
is seen (and, being a cache, rebuilt). Sets written before checksums were recorded list no files: they are
trusted when their shard and row counts match `_SUCCESS.json`, and gain checksums then (added lazily, at that
first reuse).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twotower.io.atomic import atomic_path, write_json
from twotower.io.checksum import (
    ChecksumError,
    HashingWriter,
    folder_checksums,
    log_rebuild,
    mark_verified,
    verify_folder,
)
from twotower.io.lock import folder_lock

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("qid", pa.string()),
        ("pid", pa.string()),
        ("neg_pids", pa.list_(pa.string())),
        ("teacher", pa.list_(pa.float32())),
    ]
)
DONE = "_SUCCESS.json"


@contextmanager
def triplet_lock(out: Path) -> Iterator[None]:
    """Hold the set's write lock (`<set>.lock` beside it) while checking or building it."""
    with folder_lock(out, "triplet set"):
        yield


def _shard_names(out: Path, info: dict[str, Any]) -> list[str]:
    """The shards a finished set is made of: listed in `_SUCCESS.json`, or (older sets) counted there."""
    if "files" in info:
        return list(info["files"])
    return [f"shard-{i:05d}.parquet" for i in range(int(info.get("shards", 0)))]


def finished(out: Path) -> bool:
    """Whether `out` holds a finished set whose every shard is present and intact (checksums verified once per
    process). A damaged or incomplete set gets one log line and False: the caller (holding the lock) rebuilds."""
    if not (out / DONE).exists():
        return False
    info = json.loads((out / DONE).read_text())
    try:
        if verify_folder(out, info.get("files"), "triplet shard"):
            return True
        names = _shard_names(out, info)  # an older set: counts only, then its checksums are recorded
        for name in names:
            if not (out / name).is_file():
                raise ChecksumError(out / name, "triplet shard", missing=True)
        rows = sum(pq.ParquetFile(out / name).metadata.num_rows for name in names)
        if rows != info.get("rows", rows):
            raise ChecksumError(out / DONE, f"triplet set ({rows} rows in its shards, {info['rows']} recorded)")
    except ChecksumError as exc:
        log_rebuild(exc, f"triplet set {out}")
        return False
    write_json(out / DONE, {**info, "files": folder_checksums(out, names)})
    return True


def triplet_files(path: str | Path) -> list[Path]:
    """The shards of a finished triplet set, or one clear error if it is missing, unfinished or damaged."""
    path = Path(path)
    if not (path / DONE).exists():
        raise FileNotFoundError(f"{path} holds no finished triplet set (no {DONE}); run the prepare step again")
    info = json.loads((path / DONE).read_text())
    verify_folder(path, info.get("files"), "triplet shard")
    files = [path / name for name in _shard_names(path, info)]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ChecksumError(missing[0], "triplet shard", missing=True)
    return files


class ShardWriter:
    """Accumulates rows and writes shuffled parquet shards of `shard_rows` rows (memory bounded by a shard)."""

    def __init__(self, out: Path, config: Any) -> None:
        self.out, self.config = out, config
        self.rng = np.random.default_rng(config.seed + 1)
        self.rows: dict[str, list] = {name: [] for name in SCHEMA.names}
        self.checksums: dict[str, str] = {}
        self.total = 0
        out.mkdir(parents=True, exist_ok=True)
        (out / DONE).unlink(missing_ok=True)  # a rebuild: never finished until every new shard is in
        for stale in out.glob("shard-*.parquet"):
            stale.unlink()

    def add(self, qid: str, pid: str, negatives: list[str], teacher: list[float] | None) -> None:
        if teacher is not None and not np.all(np.isfinite(teacher)):
            raise ValueError(f"the teacher scored query {qid} / passage {pid} as {teacher}: not finite")
        for name, value in zip(SCHEMA.names, (qid, pid, negatives, teacher)):
            self.rows[name].append(value)
        if len(self.rows["qid"]) >= self.config.shard_rows:
            self._flush()

    def _flush(self) -> None:
        if not self.rows["qid"]:
            return
        table = pa.table(self.rows, schema=SCHEMA)
        # Shuffle on disk so that row groups mix topics; the loader shuffles again every epoch.
        table = table.take(self.rng.permutation(len(table)))
        name = f"shard-{len(self.checksums):05d}.parquet"
        with atomic_path(self.out / name) as tmp, open(tmp, "wb") as raw, HashingWriter(raw) as fh:
            pq.write_table(table, fh, row_group_size=self.config.row_group_rows)
        self.checksums[name] = fh.checksum()
        mark_verified(self.out / name, self.checksums[name])
        self.total += len(table)
        self.rows = {name: [] for name in SCHEMA.names}

    def finish(self, source: str) -> Path:
        self._flush()
        info = {
            "rows": self.total,
            "shards": len(self.checksums),
            "files": self.checksums,
            "source": source,
            "config": self.config.settings(),
        }
        write_json(self.out / DONE, info)
        log.info("wrote %d triplets in %d shards to %s", self.total, len(self.checksums), self.out)
        return self.out
