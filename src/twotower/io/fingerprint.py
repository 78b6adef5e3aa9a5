"""Fingerprints of input files, so a cache built from one version of a file is never reused for another.

A fingerprint covers the size, the modification time and a SHA-256 of the file's head and tail (1 MiB each;
the whole file when it is smaller than 4 MiB). Editing a qrels line, appending a passage or replacing a file
with another of the same size all change it; hashing 8.8M passages in full on every run would not pay.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

HEAD_TAIL = 1 << 20
FULL_BELOW = 4 << 20


def file_fingerprint(path: str | os.PathLike) -> str:
    """`size:mtime_ns:sha256(head+tail)` of one file (hex digest shortened to 16 characters)."""
    path = Path(path)
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if stat.st_size < FULL_BELOW:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        else:
            digest.update(fh.read(HEAD_TAIL))
            fh.seek(stat.st_size - HEAD_TAIL)
            digest.update(fh.read(HEAD_TAIL))
    return f"{stat.st_size}:{stat.st_mtime_ns}:{digest.hexdigest()[:16]}"


def files_fingerprint(paths: Iterable[str | os.PathLike]) -> str:
    """One short digest over the fingerprints of several files (order matters; missing files count as such)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(str(path.name).encode())
        digest.update((file_fingerprint(path) if path.is_file() else "missing").encode())
    return digest.hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """The full SHA-256 of a file (hex): ties an index to the exact checkpoint and artefacts that built it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
