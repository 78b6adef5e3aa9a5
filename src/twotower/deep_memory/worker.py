"""A deep-memory training process: `python -m twotower.deep_memory.worker STORE JOB_ID`.

It embeds the queries if the job did not (with the pickled embedding function, checked against the digest
the launcher passed), trains, saves the model and records the outcome in the job folder (see jobs.py).
Nothing in the package imports this module, so running it with `-m` never loads it twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twotower.deep_memory.data import RelevanceData
from twotower.deep_memory.embeddings import embed
from twotower.deep_memory.jobs import PAYLOAD_ENV, JobFolder, now, read_json
from twotower.deep_memory.settings import TrainingSettings
from twotower.deep_memory.store_files import store_embeddings
from twotower.deep_memory.training import train_adapter
from twotower.io.atomic import atomic_path
from twotower.io.checksum import file_checksum, verify_folder

_term_requested = False


def _on_sigterm(signum, frame) -> None:
    global _term_requested
    _term_requested = True


class _Cancelled(Exception):
    pass


def run_worker(store_path: Path, job_id: str) -> int:
    """Body of the worker process: embed queries if needed, train, save the model, record the outcome."""
    # Lightning's start-up banners (no GPU, tips) would fill every job log; warnings still get through.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _on_sigterm)
    folder = JobFolder(store_path / "deep_memory" / "jobs", job_id)

    def stop() -> bool:
        return _term_requested or folder.cancel_requested()

    t0 = time.monotonic()
    try:
        job = folder.update(status="training", started_at=now(), pid=os.getpid(), progress={"stage": "loading"})
        verify_folder(folder.dir, job.get("checksums"), "deep-memory job file")  # settings, relevance, queries
        settings = TrainingSettings(**read_json(folder.dir / "settings.json"))
        settings.validate()  # the allow-listed adapter class, the ranges: the file is read back, not trusted
        if settings.num_threads:
            torch.set_num_threads(settings.num_threads)
        data = RelevanceData.load(folder.dir / "relevance.npz")
        if data.queries.size == 0:
            data = _embed_queries(folder, data, stop)
        docs = store_embeddings(store_path)
        spec = folder.read()
        docs = np.array(docs[: spec["store_count"]], dtype=np.float32)  # a private, writable copy

        def report(progress: dict) -> None:
            folder.update(progress={"stage": "training", **progress})

        outcome = train_adapter(data, docs, settings, report=report, should_stop=stop)
        if outcome.cancelled or stop():
            folder.update(
                status="cancelled", finished_at=now(), reason="cancelled during training", results=outcome.summary()
            )
            return 0
        with atomic_path(folder.dir / "model.pt") as tmp:
            torch.save({"config": outcome.adapter.config(), "state_dict": outcome.adapter.state_dict()}, tmp)
            model_checksum = file_checksum(tmp)
        results = outcome.summary()
        results["job_seconds"] = time.monotonic() - t0
        folder.update(
            status="completed",
            finished_at=now(),
            model_checksum=model_checksum,
            accepted=outcome.accepted,
            reason=outcome.reason,
            results=results,
            progress={"stage": "done", "eta_seconds": 0.0, "best_val": outcome.best_val, "base_val": outcome.base_val},
        )
        return 0
    except _Cancelled:
        folder.update(status="cancelled", finished_at=now(), reason="cancelled while embedding queries")
        return 0
    except BaseException as exc:  # the record must say why, whatever went wrong
        traceback.print_exc()
        if stop():
            folder.update(status="cancelled", finished_at=now(), reason=f"cancelled ({type(exc).__name__})")
            return 0
        folder.update(status="failed", finished_at=now(), reason=f"{type(exc).__name__}: {exc}")
        return 1


def _embed_queries(folder: JobFolder, data: RelevanceData, stop) -> Any:
    texts = read_json(folder.dir / "queries.json")["queries"]
    payload = (folder.dir / "embedding.pkl").read_bytes()
    expected = os.environ.get(PAYLOAD_ENV)
    if not expected or hashlib.sha256(payload).hexdigest() != expected:
        raise ValueError(
            f"{folder.dir / 'embedding.pkl'} is not the embedding function this job was started with "
            "(its SHA-256 differs from the launcher's); refusing to unpickle it"
        )
    embedding_function = pickle.loads(payload)
    dim = folder.read()["dim"]
    chunks, step = [], 1024
    start = time.monotonic()
    for i in range(0, len(texts), step):
        if stop():
            raise _Cancelled()
        chunks.append(embed(embedding_function, texts[i : i + step], dim, "queries"))
        done = i + len(chunks[-1])
        rate = (time.monotonic() - start) / done
        folder.update(
            progress={
                "stage": "embedding queries",
                "done": done,
                "total": len(texts),
                "eta_seconds": rate * (len(texts) - done),
            }
        )
    data.queries = np.concatenate(chunks)
    return data


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m twotower.deep_memory.worker STORE_PATH JOB_ID", file=sys.stderr)
        return 2
    return run_worker(Path(argv[0]), argv[1])


if __name__ == "__main__":
    sys.exit(main())
