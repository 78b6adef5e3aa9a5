"""A Deep Memory store on disk: immutable data versions named by `store.json`, so a reader sees one version.

    store.json              {"format": 2, "dim", "count", "embedding_function", "data": "data.00000007",
                             "checksums": {"documents.parquet": ..., "embeddings.npy": ...}}
    data.00000007/          documents.parquet (id, text, metadata JSON per row) and embeddings.npy (n, dim)

Every `add` writes a new `data.<generation>/` (never touched again), then swaps `store.json` in atomically to
name it, then removes versions older than the one before. A reader reads `store.json` once and then only the
folder it names: a writer elsewhere can never hand it the documents of one version and the vectors of another.
Should a writer remove that folder meanwhile (two adds while we read), the reader reads `store.json` again.

Both files carry checksums (`twotower.io.checksum`), verified once per process per version: a store is a user
artefact, so a damaged file is refused (`StoreCorruptError`, naming it), never silently rebuilt. Stores written
before (format 1: one `data/` folder swapped in place, no checksums) still load unverified; their next `add`
writes the new layout with checksums (added lazily, on write).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twotower.io.atomic import atomic_path, write_json
from twotower.io.checksum import ChecksumError, HashingWriter, mark_verified, verify_file
from twotower.io.npy import load_npy

FORMAT_VERSION = 2
LEGACY_DATA = "data"  # format 1: one folder, swapped in place on every add
DOCUMENTS, EMBEDDINGS = "documents.parquet", "embeddings.npy"
RETRIES = 200  # re-reads of store.json while writers elsewhere replace the version we were reading


class StoreCorruptError(ValueError):
    """A store file exists but cannot be read as what it should be."""


@dataclass
class Version:
    """One consistent version of a store's contents, as `store.json` named it."""

    info: dict
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metadata: list[str | None] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))


def read_info(path: Path) -> dict:
    """store.json (empty dict for a new store)."""
    try:
        return json.loads((path / "store.json").read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise StoreCorruptError(f"{path / 'store.json'} is not valid JSON ({exc}); the store is damaged") from None


def data_folder(path: Path, info: dict) -> Path:
    """The folder holding the version `info` (store.json) names."""
    return path / info.get("data", LEGACY_DATA)


def read_version(path: Path) -> Version:
    """The version store.json names now, read whole and checked; retried when a writer replaces it meanwhile."""
    for _attempt in range(RETRIES):
        info = read_info(path)
        if not info.get("count"):
            return Version(info, embeddings=np.zeros((0, info.get("dim") or 0), np.float32))
        try:
            return _read(path, info)
        except FileNotFoundError:
            pass  # the version was removed by two adds since we read store.json: read it again
        except StoreCorruptError:
            if read_info(path) == info:
                raise  # store.json still names this very version: the damage is real
        time.sleep(0.01)
    raise FileNotFoundError(
        f"{data_folder(path, read_info(path))}: documents are missing although store.json lists them"
    )


def _read(path: Path, info: dict) -> Version:
    folder = data_folder(path, info)
    sums = info.get("checksums") or {}
    try:
        for name in (DOCUMENTS, EMBEDDINGS):
            verify_file(folder / name, sums.get(name), "store file")
        table = pq.read_table(folder / DOCUMENTS)
        embeddings = np.asarray(load_npy(folder / EMBEDDINGS, "store embeddings"))
    except FileNotFoundError:
        raise  # a writer removed this version meanwhile: the caller reads store.json again
    except ChecksumError as exc:
        raise StoreCorruptError(f"{exc}; the store is damaged") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreCorruptError(f"{folder / DOCUMENTS} is unreadable ({exc}); the store is damaged") from None
    except ValueError as exc:  # embeddings.npy is not a (n, dim) matrix
        raise StoreCorruptError(f"{exc}; the store is damaged") from None
    if len(table) != len(embeddings) or len(table) != info["count"]:
        raise StoreCorruptError(
            f"{folder}: documents.parquet holds {len(table)} rows, embeddings.npy {len(embeddings)} and store.json "
            f"lists {info['count']}; the store is damaged"
        )
    return Version(info, table["id"].to_pylist(), table["text"].to_pylist(), table["metadata"].to_pylist(), embeddings)


def write_version(path: Path, old: Version, new: Version, embedding_function: str) -> Version:
    """Commit `old` + `new` rows as the next version (the caller holds the store's write lock); returns it."""
    vectors = np.concatenate([old.embeddings.reshape(-1, new.embeddings.shape[1]), new.embeddings])
    table = pa.table(
        {
            "id": pa.array(old.ids + new.ids, pa.string()),
            "text": pa.array(old.texts + new.texts, pa.string()),
            "metadata": pa.array(old.metadata + new.metadata, pa.string()),
        }
    )
    generation = int(old.info.get("generation", 0)) + 1
    name = f"data.{generation:08d}"
    sums = {}
    with atomic_path(path / name) as tmp:
        tmp.mkdir()
        for file, save in (
            (DOCUMENTS, lambda fh: pq.write_table(table, fh)),
            (EMBEDDINGS, lambda fh: np.save(fh, vectors)),
        ):
            with open(tmp / file, "wb") as raw, HashingWriter(raw) as fh:
                save(fh)
            sums[file] = fh.checksum()
    for file, checksum in sums.items():
        mark_verified(path / name / file, checksum)
    info = {
        "format": FORMAT_VERSION,
        "dim": int(vectors.shape[1]),
        "count": len(vectors),
        "embedding_function": embedding_function,
        "generation": generation,
        "data": name,
        "checksums": sums,
    }
    write_json(path / "store.json", info)
    _remove_old_versions(path, keep={name, old.info.get("data", LEGACY_DATA)})
    return Version(info, old.ids + new.ids, old.texts + new.texts, old.metadata + new.metadata, vectors)


def _remove_old_versions(path: Path, keep: set[str]) -> None:
    """Drop versions before the previous one (a reader still on the previous one finishes undisturbed)."""
    for folder in [path / LEGACY_DATA, *path.glob("data.*")]:
        if folder.is_dir() and folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def store_embeddings(path: Path) -> np.ndarray:
    """The (n, dim) document vectors of the store's current version (verified), for a training worker."""
    return read_version(path).embeddings
