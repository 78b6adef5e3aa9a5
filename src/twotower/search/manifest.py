"""`manifest.json`: what an index folder holds and which model made it.

The manifest is the commit point: a build (or an add) writes its files under a fresh build id, then replaces
`manifest.json` in one rename, then deletes the files of the build it replaced. A reader sees the old index or
the new one, never a mix, and a build that fails before the rename leaves the old index serving. It ties the
vectors to the checkpoint (SHA-256 of the file, its model config, the vector dimension), records the kind and
backend, the number of documents and the byte size of every file, so a truncated copy is caught on load.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twotower.atomic import atomic_path
from twotower.search.errors import IndexCorruptError, IndexNotFoundError

FORMAT = "twotower-index/1"
MANIFEST = "manifest.json"


@dataclass
class Manifest:
    backend: str  # "faiss" | "milvus"
    index: dict[str, Any]  # kinds.kind_to_dict(...)
    dim: int
    count: int
    checkpoint: dict[str, Any]  # {"path", "sha256", "model_config"}
    build_id: str = ""  # names this build's files (documents-<id>.sqlite, vectors-<id>.faiss) and Milvus collection
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes, checked on load
    milvus: dict[str, Any] = field(default_factory=dict)  # {"uri", "collection"} for the milvus backend
    source: list[str] = field(default_factory=list)  # collections the documents came from
    build: dict[str, Any] = field(default_factory=dict)  # seconds, passages_per_second, device
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    format: str = FORMAT

    @property
    def kind(self) -> str:
        return self.index["kind"]

    def describe(self) -> str:
        return f"{self.backend} {self.kind} index of {self.count:,} {self.dim}-d vectors"


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    path = Path(folder) / MANIFEST
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(asdict(manifest), indent=2, default=str) + "\n")
    return path


def read_manifest(folder: str | Path) -> Manifest:
    """Read and sanity-check an index folder's manifest; every error names the path and what is wrong."""
    folder = Path(folder)
    if not folder.exists():
        raise IndexNotFoundError(f"no index at {folder}: build one with `twotower index --ckpt ... --collection ... --out {folder}`")
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(
            f"{folder} is not a twotower index: {MANIFEST} is missing (an interrupted build never writes it; rebuild the index)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{path} is not valid JSON ({exc}); the index is damaged, rebuild it") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IndexCorruptError(f"{path}: format is {data.get('format') if isinstance(data, dict) else None!r}, expected {FORMAT!r}")
    known = set(Manifest.__dataclass_fields__)
    missing = [k for k in ("backend", "index", "dim", "count", "checkpoint") if k not in data]
    if missing:
        raise IndexCorruptError(f"{path} lacks the field(s) {', '.join(missing)}; rebuild the index")
    return Manifest(**{k: v for k, v in data.items() if k in known})


def documents_file(build_id: str) -> str:
    return f"documents-{build_id}.sqlite"


def check_files(folder: str | Path, manifest: Manifest) -> None:
    """Every file the manifest lists must be there at the recorded size: a partial copy fails here, early."""
    folder = Path(folder)
    for name, size in manifest.files.items():
        path = folder / name
        if not path.exists():
            raise IndexCorruptError(f"index {folder} is incomplete: {name} is missing (the manifest lists it)")
        actual = path.stat().st_size
        if actual != size:
            raise IndexCorruptError(
                f"index {folder}: {name} is {actual:,} bytes but was {size:,} when built (truncated or replaced); rebuild the index"
            )
