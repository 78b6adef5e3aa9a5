"""Fingerprints of input files, so a cache built from one version of a file is never reused for another.

A fingerprint is the file's size, its mtime and a hash of *all* its bytes (`twotower.io.checksum`'s fast hash): a
same-size edit in the middle of a large collection, even with its modification time put back, changes it.

Hashing costs one pass over the file, so it is taken where the file is read anyway: readers open inputs with
`hashed_open`, which hashes the bytes as they stream by and, at the end of the file, remembers the fingerprint
for this process. A later `file_fingerprint` of the same file version (same inode, size, mtime and ctime;
any write changes the ctime, which no tool can put back) is then free. Only a file never read in this process
is hashed on its own.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from twotower.io.checksum import CHUNK, HashingReader

# (resolved path, device, inode, size, mtime_ns, ctime_ns) -> fingerprint, for this process.
_KNOWN: dict[tuple, str] = {}


def _version(path: Path, stat: os.stat_result) -> tuple:
    return (str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _fingerprint(stat: os.stat_result, checksum: str) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}:{checksum.split(':', 1)[1][:16]}"


def file_fingerprint(path: str | os.PathLike) -> str:
    """`size:mtime_ns:hash` of one whole file (hash shortened to 16 hex characters); free if it was read with
    `hashed_open` in this process."""
    path = Path(path)
    stat = path.stat()
    known = _KNOWN.get(_version(path, stat))
    if known is not None:
        return known
    with hashed_open(path) as fh:
        while fh.read(CHUNK):
            pass
    return _KNOWN[_version(path, stat)]


@contextmanager
def hashed_open(path: str | os.PathLike) -> Iterator[HashingReader]:
    """Open `path` for binary reading through a hasher; once read to the end, its fingerprint is remembered.

    A file changed while it was read (its stat differs at the end) is not remembered: it is hashed again
    when asked, so the fingerprint always describes one version of the file."""
    path = Path(path)
    with open(path, "rb") as raw:
        before = os.fstat(raw.fileno())
        reader = HashingReader(raw)
        yield reader
        if raw.read(1) == b"" and reader.bytes_read == before.st_size:
            after = path.stat()
            if _version(path, after) == _version(path, before):
                _KNOWN[_version(path, before)] = _fingerprint(before, reader.checksum())


def hashed_text(path: str | os.PathLike) -> Iterator[str]:
    """The lines of a UTF-8 text file, hashed as they are read (see `hashed_open`)."""
    with hashed_open(path) as fh:
        yield from io.TextIOWrapper(io.BufferedReader(fh, CHUNK), encoding="utf-8")


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
