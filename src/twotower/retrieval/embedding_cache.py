"""Embed a large text list once and keep the vectors on disk, resumably.

Encoding a corpus with a transformer takes minutes on a CPU; an interrupted run must not start over, and a
crash must never leave a half-written `.npy` that looks complete. Work is saved chunk by chunk in a `.parts`
folder beside the target and assembled (atomically) at the end.

The cache is keyed by its inputs' contents: `<target>.key` holds a digest of the texts (and of the caller's
`key`, e.g. the embedding model), so a cache written for other texts, even as many of them, is never reused,
and neither are the parts of an interrupted run over other texts. Reuse is logged (INFO). The key file's second
line is the checksum of the vectors, verified once per process: damaged vectors are embedded again (one log line).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from twotower.io.atomic import atomic_path
from twotower.io.checksum import ChecksumError, HashingWriter, file_checksum, log_rebuild, mark_verified, verify_file

log = logging.getLogger(__name__)


def texts_digest(texts: Sequence[str], key: str = "") -> str:
    """SHA-256 (shortened) of `key` and every text, in order; a few seconds for millions of passages."""
    digest = hashlib.sha256(key.encode())
    digest.update(str(len(texts)).encode())
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:32]


def _key_file(path: Path) -> Path:
    return path.with_name(path.name + ".key")


def _read_key(path: Path) -> str | None:
    """The inputs digest in `<path>.key` (its first line; the second, when present, is the file's checksum)."""
    lines = _key_lines(path)
    return lines[0] if lines else None


def _key_lines(path: Path) -> list[str]:
    try:
        return _key_file(path).read_text().split()
    except OSError:
        return []


def _load_verified(target: Path) -> np.ndarray:
    """The cached matrix, checked against the checksum its key file records (once per process); a cache
    written before checksums were recorded gets one now (trusted on this first use)."""
    lines = _key_lines(target)
    if len(lines) > 1:
        verify_file(target, lines[1], "embedding cache")
    else:
        try:
            with atomic_path(_key_file(target)) as tmp:
                tmp.write_text(f"{lines[0]}\n{file_checksum(target)}\n")
        except OSError as exc:  # a read-only cache: verified from its next write on
            log.debug("could not record the checksum of %s (%s)", target, exc)
    return np.load(target)


def cached_embeddings(
    embed: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    target: str | Path,
    label: str = "texts",
    chunk: int = 2048,
    progress: bool = True,
    key: str = "",
) -> np.ndarray:
    """Rows of `embed(texts)` in the order of `texts`, read from `target` when it was made from these texts
    (and this `key`, e.g. a model name)."""
    target = Path(target)
    wanted = texts_digest(texts, key)
    if target.exists():
        stored = _read_key(target)
        if stored == wanted:
            try:
                vectors = _load_verified(target)
                if len(vectors) == len(texts):
                    log.info(
                        "reusing cached %s embeddings %s (%d rows; inputs unchanged, key %s)",
                        label,
                        target,
                        len(vectors),
                        wanted[:12],
                    )
                    return vectors
                log.warning("%s holds %d rows for %d texts; embedding again", target, len(vectors), len(texts))
            except ChecksumError as exc:  # a cache: embedded again, with one log line
                log_rebuild(exc, f"{label} embeddings")
            except (ValueError, OSError, EOFError) as exc:
                log.warning("%s is unreadable (%s); embedding again", target, exc)
        else:
            log.info(
                "cached %s embeddings %s were made from other inputs (key %s, now %s); embedding again",
                label,
                target,
                (stored or "none")[:12],
                wanted[:12],
            )
    parts = target.with_suffix(".parts")
    if parts.exists() and _read_key(parts / "parts") != wanted:
        shutil.rmtree(parts)  # parts of an interrupted run over other texts
    parts.mkdir(parents=True, exist_ok=True)
    _key_file(parts / "parts").write_text(wanted)
    # Length-sorted chunks keep a transformer's padding low; the order is restored at the end.
    order = np.argsort([len(t) for t in texts], kind="stable")
    starts = range(0, len(texts), chunk)
    columns = (TextColumn(f"embedding {label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(label, total=len(texts))
        for start in starts:
            part = parts / f"{start:09d}.npy"
            if not part.exists():
                idx = order[start : start + chunk]
                vectors = np.asarray(embed([texts[i] for i in idx]), dtype=np.float32)
                with atomic_path(part) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, vectors)
            bar.advance(task, min(chunk, len(texts) - start))
    sorted_rows = np.concatenate([np.load(parts / f"{s:09d}.npy") for s in starts])
    out = np.empty_like(sorted_rows)
    out[order] = sorted_rows
    # The key goes last and is removed first: a crash in between leaves a cache without a key, never a key
    # vouching for vectors it does not describe.
    _key_file(target).unlink(missing_ok=True)
    with atomic_path(target) as tmp, open(tmp, "wb") as raw, HashingWriter(raw) as fh:
        np.save(fh, out)
    mark_verified(target, fh.checksum())
    with atomic_path(_key_file(target)) as tmp:  # the inputs digest, then the checksum of the vectors
        tmp.write_text(f"{wanted}\n{fh.checksum()}\n")
    shutil.rmtree(parts, ignore_errors=True)
    return out
