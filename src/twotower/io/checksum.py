"""Checksums of what we write and later trust: one fast hash, taken while the bytes pass anyway.

    with open(path, "wb") as raw, HashingWriter(raw) as fh:   # hash while writing: no second pass
        np.save(fh, matrix)
    info["checksums"] = {path.name: fh.checksum()}
    ...
    verify_file(path, info["checksums"][path.name])            # on open: once per process per file version

A checksum is `"<algorithm>:<hex digest>"`: xxh3-128 (xxhash, a dependency; several GB/s) or BLAKE2b where
xxhash is missing; either kind verifies wherever its algorithm is available. A mismatch is `ChecksumError`,
one line naming the file: a *cache* catches it and rebuilds (`log_rebuild`), a *user artefact* lets it
through, refused. Files written before checksums were recorded have none (`expected=None`): they load as
they did; a built folder gains them at its first open (`verify_or_record`), other files when next written.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from twotower.errors import UserError
from twotower.io.atomic import write_json

log = logging.getLogger(__name__)

try:  # pragma: no branch - xxhash is a dependency; BLAKE2b keeps a bare install working
    import xxhash
except ImportError:  # pragma: no cover
    xxhash = None

ALGORITHM = "xxh3_128" if xxhash is not None else "blake2b"
CHUNK = 1 << 22  # 4 MiB: what one read or hash step holds in memory

# (device, inode, size, mtime_ns, ctime_ns, checksum) already verified in this process.
_VERIFIED: set[tuple] = set()


class ChecksumError(UserError, ValueError):
    """A file's bytes differ from those recorded when it was written (torn, damaged or changed since)."""

    def __init__(self, path: str | os.PathLike, what: str = "file", missing: bool = False) -> None:
        super().__init__(
            f"{path} is missing: the {what} was recorded when its set was written"
            if missing
            else f"{path} is damaged: the {what}'s checksum differs from the one recorded when it was written "
            "(a torn write, a bad disk or an edit since)"
        )
        self.path = Path(path)


def hasher(algorithm: str = ALGORITHM) -> Any:
    """A fresh incremental hash object (`update(bytes)`, `hexdigest()`) of `algorithm`."""
    if algorithm == "xxh3_128":
        if xxhash is None:
            raise ModuleNotFoundError("xxhash is needed for this xxh3_128 checksum: pip install xxhash")
        return xxhash.xxh3_128()
    if algorithm == "blake2b":
        return hashlib.blake2b(digest_size=16)
    if algorithm == "sha256":  # what index manifests recorded before they used this module
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


def _tag(h: Any, algorithm: str) -> str:
    return f"{algorithm}:{h.hexdigest()}"


def bytes_checksum(data: bytes | memoryview, algorithm: str = ALGORITHM) -> str:
    """The checksum of bytes in memory (a config or tokenizer stored inside a checkpoint)."""
    h = hasher(algorithm)
    h.update(data)
    return _tag(h, algorithm)


def file_checksum(path: str | os.PathLike, algorithm: str = ALGORITHM) -> str:
    """The checksum of a whole file, read in `CHUNK`s."""
    h = hasher(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return _tag(h, algorithm)


def _key(path: Path, expected: str) -> tuple:
    """One version of one file, wherever it is linked or moved (a folder renamed into place keeps it)."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, expected)


def verify_file(path: str | os.PathLike, expected: str | None, what: str = "file") -> bool:
    """Check `path` against the checksum recorded when it was written; False when none was (an older file).

    Hashes the file once per process per version of it (a rewrite, even in place, changes its ctime), so
    reopening a verified file is free. Raises `ChecksumError` naming the file on a mismatch."""
    if not expected:
        return False
    path = Path(path)
    key = _key(path, expected)
    if key in _VERIFIED:
        return True
    algorithm = expected.split(":", 1)[0]
    if algorithm == "xxh3_128" and xxhash is None:  # pragma: no cover - xxhash is a dependency
        log.warning("cannot verify %s: its checksum is xxh3_128 and xxhash is not installed", path)
        return False
    if file_checksum(path, algorithm) != expected:
        raise ChecksumError(path, what)
    _VERIFIED.add(key)
    return True


def forget_verified() -> None:
    """Forget every verification of this process (the next open of each file hashes it again)."""
    _VERIFIED.clear()


def mark_verified(path: str | os.PathLike, checksum: str) -> None:
    """Record that `path` has `checksum` (we just wrote it, hashing as we went): no re-read to verify it."""
    _VERIFIED.add(_key(Path(path), checksum))


def folder_checksums(folder: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, str]:
    """`{name: checksum}` of files in `folder`: `names`, or every file but the manifest (`_SUCCESS*`),
    for writers that cannot hash while they write; each is marked verified (we just read it whole)."""
    folder = Path(folder)
    if names is None:
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and not _is_manifest(p.name))
    sums = {name: file_checksum(folder / name) for name in names}
    for name, checksum in sums.items():
        mark_verified(folder / name, checksum)
    return sums


def _is_manifest(name: str) -> bool:
    return name.startswith(("_SUCCESS", ".")) or name.endswith(".lock")


def verify_folder(folder: str | os.PathLike, checksums: dict[str, str] | None, what: str) -> bool:
    """`verify_file` for each recorded file of `folder`; False when none is recorded (an older folder)."""
    folder = Path(folder)
    for name, expected in (checksums or {}).items():
        if not (folder / name).is_file():
            raise ChecksumError(folder / name, what, missing=True)
        verify_file(folder / name, expected, what)
    return bool(checksums)


def verify_or_record(folder: str | os.PathLike, manifest: str, info: dict, what: str) -> dict:
    """Verify the files of a built folder against `info["checksums"]` (its manifest, already read); a folder
    built before checksums were recorded gets them now, written into `manifest` (trusted on this first use:
    later damage is caught). Returns `info` with the checksums. Raises `ChecksumError` naming a bad file."""
    folder = Path(folder)
    if verify_folder(folder, info.get("checksums"), what):
        return info
    info = {**info, "checksums": folder_checksums(folder)}
    try:
        write_json(folder / manifest, info)
    except OSError as exc:  # a read-only folder: verified from the next build on
        log.debug("could not record checksums in %s (%s)", folder / manifest, exc)
    return info


def log_rebuild(exc: Exception, what: str) -> None:
    """The one log line a damaged cache gets before it is rebuilt."""
    log.warning("%s; rebuilding the %s", exc, what)


class HashingWriter:
    """A binary file wrapper that hashes every byte written through it (`np.save`, `pq.write_table` accept it).

    Use as a context manager or call `checksum()` once all bytes are written."""

    def __init__(self, raw: IO[bytes], algorithm: str = ALGORITHM) -> None:
        self.raw, self.algorithm, self._h = raw, algorithm, hasher(algorithm)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._h.update(view)
        return self.raw.write(view)

    def checksum(self) -> str:
        return _tag(self._h, self.algorithm)

    def flush(self) -> None:
        self.raw.flush()

    def tell(self) -> int:
        return self.raw.tell()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def close(self) -> None:  # the caller owns `raw`
        self.flush()

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


class HashingReader(io.RawIOBase):
    """A binary file wrapper that hashes every byte read through it, so a full read yields the checksum
    (pyarrow's CSV reader, `io.BufferedReader` and `io.TextIOWrapper` can read through it)."""

    def __init__(self, raw: IO[bytes], algorithm: str = ALGORITHM) -> None:
        super().__init__()
        self.raw, self.algorithm, self._h = raw, algorithm, hasher(algorithm)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self._h.update(data)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self._h.update(memoryview(buffer)[:n])
            self.bytes_read += n
        return n

    def readable(self) -> bool:
        return True

    def checksum(self) -> str:
        return _tag(self._h, self.algorithm)

    def close(self) -> None:  # the caller owns `raw`
        super().close()
