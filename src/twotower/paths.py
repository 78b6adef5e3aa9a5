"""Where data and caches live, resolved from environment settings."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "TWOTOWER_DATA"
CACHE_ENV = "TWOTOWER_CACHE"


def data_dir() -> Path:
    """The MS MARCO data folder: `$TWOTOWER_DATA`, else `../shared/data` next to the checkout."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    repo = Path(__file__).resolve().parents[2]
    return (repo.parent / "shared" / "data").resolve()


def cache_dir() -> Path:
    """Where reusable derived artefacts (corpus embeddings, shards) are cached: `$TWOTOWER_CACHE` or `outputs/cache`."""
    if os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        path = Path(__file__).resolve().parents[2] / "outputs" / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(path: str | os.PathLike, what: str = "file") -> Path:
    """Return `path` if it exists; otherwise raise naming the path and the setting that points at it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found: {path}. Data is read from ${DATA_ENV} "
            f"(now {data_dir()}); set {DATA_ENV} or the config's `data.dir` to the folder holding MS MARCO."
        )
    return path
