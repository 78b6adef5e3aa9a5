"""Embed a large text list once and keep the vectors on disk, resumably.

Encoding a corpus with a transformer takes minutes on a CPU; an interrupted run must not start over, and a
crash must never leave a half-written `.npy` that looks complete. Work is saved chunk by chunk in a `.parts`
folder beside the target and assembled (atomically) at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from twotower.atomic import atomic_path

log = logging.getLogger(__name__)


def cached_embeddings(embed: Callable[[list[str]], np.ndarray], texts: Sequence[str], target: str | Path,
                      label: str = "texts", chunk: int = 2048, progress: bool = True) -> np.ndarray:
    """Rows of `embed(texts)` in the order of `texts`, read from `target` when it holds one row per text."""
    target = Path(target)
    if target.exists():
        try:
            vectors = np.load(target)
            if len(vectors) == len(texts):
                return vectors
            log.warning("%s holds %d rows for %d texts; embedding again", target, len(vectors), len(texts))
        except (ValueError, OSError) as exc:
            log.warning("%s is unreadable (%s); embedding again", target, exc)
    parts = target.with_suffix(".parts")
    parts.mkdir(parents=True, exist_ok=True)
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
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        np.save(fh, out)
    for part in parts.iterdir():
        part.unlink()
    parts.rmdir()
    return out
