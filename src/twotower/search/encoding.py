"""The model side of an index: load a checkpoint with the identity its manifest records, and encode a
collection chunk by chunk (bounded memory, one progress bar, non-finite vectors refused)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from twotower.io.fingerprint import file_sha256
from twotower.models.checkpoint import load_checkpoint, model_from_checkpoint
from twotower.models.encoder import TwoTowerEncoder

# Encoded vectors are handed to the backend this many documents at a time, bounding memory on big corpora.
CHUNK = 65_536


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder_with_identity(checkpoint: str | Path, device: str | None = None) -> tuple[TwoTowerEncoder, dict]:
    """The encoder and the identity the manifest records: resolved path, SHA-256, model config."""
    path = Path(checkpoint).resolve()
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, path)
    cfg = payload["model_config"]
    device = device or default_device()
    encoder = TwoTowerEncoder(model.to(device), device)
    # The tokenizer state (per-word IDF, tokenizer files) and a transformer's tower fields are long and implied
    # by the hash anyway: the manifest keeps their kind only.
    summary = {k: v for k, v in cfg.items() if k not in ("tokenizer", "tower_fields")}
    summary["tokenizer"] = {"kind": (cfg.get("tokenizer") or {}).get("kind", "transformer")}
    return encoder, {"path": str(path), "sha256": file_sha256(path), "model_config": summary}


def encode_in_batches(
    encoder: TwoTowerEncoder,
    texts: Sequence[str],
    batch_size: int = 2048,
    progress: bool = True,
    description: str = "encoding passages",
) -> Iterator[np.ndarray]:
    """Yield the document vectors of `texts` a chunk (CHUNK texts) at a time, in order, with one progress bar.

    The encoder is handed `batch_size` texts at a time; it sorts them by length and batches them in the tower's
    own size (`TwoTowerEncoder`), so this only chunks and counts."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(description, total=len(texts), rate="")
        done = 0
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start : start + CHUNK]
            parts = []
            for b in range(0, len(chunk), batch_size):
                parts.append(encoder.encode_documents(chunk[b : b + batch_size]))
                done += len(parts[-1])
                bar.update(
                    task, advance=len(parts[-1]), rate=f"{done / (time.perf_counter() - started):,.0f} passages/s"
                )
            vectors = np.concatenate(parts)
            bad = ~np.isfinite(vectors).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"the model gives non-finite vectors (NaN or inf) for {int(bad.sum())} of "
                    f"{len(vectors)} passages (first: row {start + int(np.argmax(bad))}): its weights "
                    "are broken, e.g. by a diverged training run; refusing to index them"
                )
            yield vectors
