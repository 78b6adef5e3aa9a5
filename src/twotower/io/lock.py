"""The one inter-process write lock: `<target>.lock` beside whatever two processes may write at once.

    with folder_lock(store_folder, "Deep Memory store"):   # waits (saying so once) while another process holds it
        ...                                                # re-read what is on disk, then write

The lock file sits beside the target, not inside it: a folder swapped in whole or removed by a failed first
build keeps its lock. `filelock` (a dependency) does the locking, `fcntl.flock` where it is missing; either
way the lock is released when the process dies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def lock_path(target: str | os.PathLike) -> Path:
    """`<target>.lock` beside `target` (resolved, so two spellings of one path share a lock)."""
    target = Path(target).resolve()
    return target.with_name(target.name + ".lock")


@contextmanager
def folder_lock(target: str | os.PathLike, what: str = "folder", announce: bool = True) -> Iterator[None]:
    """Hold `target`'s write lock for the block. Having to wait for another process is one warning line, or
    a debug one without `announce` (a lock held for milliseconds at a time, as a store's `add` holds it)."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from filelock import FileLock, Timeout
    except ImportError:  # pragma: no cover - filelock is a dependency
        with _flock(path, what, target, announce):
            yield
        return
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _waiting(what, target, path, announce)
        lock.acquire(poll_interval=0.005)
    try:
        yield
    finally:
        lock.release()


def _waiting(what: str, target: str | os.PathLike, path: Path, announce: bool) -> None:
    """One line saying why we wait: a warning, or at debug level without `announce`."""
    level = logging.WARNING if announce else logging.DEBUG
    log.log(level, "waiting for another process writing the %s %s to finish (lock %s)", what, target, path)


@contextmanager
def _flock(path: Path, what: str, target: str | os.PathLike, announce: bool) -> Iterator[None]:  # pragma: no cover
    import fcntl

    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _waiting(what, target, path, announce)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
