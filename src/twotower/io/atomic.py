"""Atomic writes: a crash mid-write never leaves a truncated file, or a half-built folder, where a good one was."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DONE = "_SUCCESS"
"""The marker a folder built with `building` holds once it is complete."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on error delete it.

    Works for files and for folders (an index directory is swapped in whole). A full disk surfaces as an
    `OSError(ENOSPC)` naming `path` (a write through a file object does not say which file it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        try:
            yield target
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) and not exc.filename:
                raise OSError(exc.errno, exc.strerror, str(path)) from exc
            raise
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


@contextlib.contextmanager
def building(out: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `out`; on success rename it to `out` (which must then hold `_SUCCESS`).

    The temp name carries the pid, so a later build can tell a dead builder's leftovers (removed) from a live
    one's. If another process published `out` first (two DDP ranks building the same cache), ours is dropped.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        if not _alive(stale.name.split(".")[-2]):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if not (tmp / DONE).exists():
            raise RuntimeError(f"{tmp}: the build finished without writing {DONE}")
        if out.exists() and not (out / DONE).exists():
            shutil.rmtree(out)  # an unfinished folder from an older layout: never trusted
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / DONE).exists():
                raise
            log.info("%s was built by another process meanwhile; using that one", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
