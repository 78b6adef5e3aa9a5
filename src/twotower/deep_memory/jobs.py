"""Background training jobs: one folder and one worker process per job, state in JSON files.

    <store>/deep_memory/jobs/<job id>/
        job.json        status, progress, results: written by the worker (and by readers only once the
                        worker is gone: to record `failed` or `cancelled`)
        worker.json     pid and process start time, written by the launcher
        relevance.npz   query embeddings (when embedded up front) and relevant store rows, in CSR form
        queries.json    query texts (when the worker embeds them), embedding.pkl: the embedding function
        settings.json   the resolved training settings
        cancel          present once cancellation was asked for
        model.pt        the trained adapter, once completed
        worker.log      the worker's stdout and stderr

The worker is `python -m twotower.deep_memory.worker <store> <job id>` (worker.py), started in its own session
so it outlives the process that asked for it; any process can read the folder and see the same state.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from twotower.deep_memory.adapter import QueryAdapter
from twotower.io.atomic import write_json
from twotower.io.checksum import folder_checksums, verify_file
from twotower.io.process import process_alive, process_start_ticks

# A job is pending, training, completed, failed or cancelled; these two are not finished.
ACTIVE = ("pending", "training")
# A launched worker that has not written its pid within this time is taken as never started.
SPAWN_GRACE_S = 120.0


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_job_id() -> str:
    """Sortable by creation time, unique across processes."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:8]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


class JobFolder:
    """Reading and updating one job's files."""

    def __init__(self, root: Path, job_id: str) -> None:
        self.id = job_id
        self.dir = root / job_id

    @property
    def job_file(self) -> Path:
        return self.dir / "job.json"

    def read(self) -> dict:
        for _ in range(20):
            try:
                return read_json(self.job_file)
            except FileNotFoundError:
                raise KeyError(f"no deep-memory job {self.id!r} in this store") from None
            except json.JSONDecodeError:
                time.sleep(0.05)
        return read_json(self.job_file)

    def update(self, **changes: Any) -> dict:
        job = self.read()
        job.update(changes, updated_at=now())
        write_json(self.job_file, job)
        return job

    def input_checksums(self) -> dict[str, str]:
        """Checksums of the files the worker will read back (settings, relevance, queries, embedding function),
        for `job.json`: the worker verifies them first, so a torn or edited file fails the job by name."""
        return folder_checksums(self.dir, sorted(p.name for p in self.dir.iterdir() if p.is_file()))

    def read_model(self, job: dict) -> QueryAdapter:
        """The trained adapter in `model.pt`, checked against the checksum the worker recorded in `job` (a job
        from before checksums has none and loads as it did)."""
        path = self.dir / "model.pt"
        verify_file(path, job.get("model_checksum"), "deep-memory model")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        adapter = QueryAdapter(**saved["config"])
        adapter.load_state_dict(saved["state_dict"])
        return adapter.eval()

    def worker(self) -> dict:
        path = self.dir / "worker.json"
        return read_json(path) if path.exists() else {}

    def cancel_requested(self) -> bool:
        return (self.dir / "cancel").exists()

    def log_tail(self, lines: int = 5) -> str:
        path = self.dir / "worker.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])


PAYLOAD_ENV = "TWOTOWER_JOB_PAYLOAD_SHA256"


def launch(root: Path, job_id: str, store_path: Path, payload_sha256: str | None = None) -> subprocess.Popen:
    """Start the worker for a prepared job folder; returns at once.

    `payload_sha256` is the digest of the job's `embedding.pkl`, handed to the worker outside the folder: the
    worker unpickles only that exact file, never one put in the job folder by anyone else.
    """
    folder = JobFolder(root, job_id)
    env = dict(os.environ)
    env.pop(PAYLOAD_ENV, None)
    if payload_sha256:
        env[PAYLOAD_ENV] = payload_sha256
    # The worker must import this package even when it is run from a source checkout.
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    log = open(folder.dir / "worker.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "twotower.deep_memory.worker", str(store_path), job_id],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    write_json(
        folder.dir / "worker.json",
        {"pid": proc.pid, "start_ticks": process_start_ticks(proc.pid), "launched_at": time.time()},
    )
    return proc


def reconcile(folder: JobFolder) -> dict:
    """The job's record, first marking it `failed` (or `cancelled`) if its worker is gone without saying so."""
    job = folder.read()
    if job["status"] not in ACTIVE:
        return job
    worker = folder.worker()
    if worker:
        if process_alive(worker["pid"], worker.get("start_ticks")):
            return job
        job = folder.read()  # it may have finished between the two reads
        if job["status"] not in ACTIVE:
            return job
        if folder.cancel_requested():
            return folder.update(status="cancelled", finished_at=now(), reason="cancelled before the worker finished")
        tail = folder.log_tail()
        return folder.update(
            status="failed",
            finished_at=now(),
            reason=f"training process {worker['pid']} exited without finishing (killed or crashed)"
            + (f"; last log lines:\n{tail}" if tail else ""),
        )
    created = datetime.fromisoformat(job["created_at"]).timestamp()
    if time.time() - created > SPAWN_GRACE_S:
        return folder.update(status="failed", finished_at=now(), reason="the training process never started")
    return job


def request_cancel(folder: JobFolder) -> dict:
    job = reconcile(folder)
    if job["status"] not in ACTIVE:
        return job
    (folder.dir / "cancel").touch()
    worker = folder.worker()
    if worker and process_alive(worker["pid"], worker.get("start_ticks")):
        try:
            os.kill(worker["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        return folder.read()
    return folder.update(status="cancelled", finished_at=now(), reason="cancelled before training started")


def picklable(function: Any) -> bytes | None:
    """Pickled `function` if a fresh worker process can rebuild it, else None (the caller embeds the queries).

    Only functions from installed packages or this package qualify: a lambda, a closure, or a class from
    `__main__` or a script folder would not import in the worker.
    """
    import importlib.util

    module = getattr(function, "__module__", None)
    if not module or module == "__main__":
        return None
    spec = importlib.util.find_spec(module.split(".")[0])
    origin = str(getattr(spec, "origin", "") or "")
    ours = str(Path(__file__).resolve().parents[2])
    if not (origin.startswith(ours) or "site-packages" in origin or "dist-packages" in origin):
        return None
    try:
        payload = pickle.dumps(function)
        pickle.loads(payload)
    except Exception:
        return None
    return payload
