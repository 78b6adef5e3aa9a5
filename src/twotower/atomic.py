"""Atomic file writes: a crash mid-write never leaves a truncated file where a good one was."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on error delete it.

    Works for files and for folders (an index directory is swapped in whole).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if target.is_dir() and path.is_dir():
            # os.replace cannot swap a non-empty directory: move the old one aside first.
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _plain(value: Any) -> Any:
    """JSON for what `json` cannot write itself: numpy and torch values as numbers (lists), anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """`data` as indented JSON at `path`, written atomically; numpy/torch values become numbers, paths text."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_plain) + "\n")
    return Path(path)
