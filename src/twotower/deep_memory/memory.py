"""`db.deep_memory`: train, watch, cancel, evaluate and choose query adapters for one store.

The store hands itself in (`DeepMemory(store)`); this module never imports the store module. Input checks
live in data.py, job folders and processes in jobs.py and worker.py, training in training.py, tables in
report.py.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from twotower.deep_memory import jobs as J
from twotower.deep_memory.adapter import QueryAdapter
from twotower.deep_memory.data import Relevance, RelevanceData, Store, UnknownIdsError, check_relevance, split_sizes
from twotower.deep_memory.embeddings import EmbeddingFunction, describe, embed
from twotower.deep_memory.evaluation import REPORTED, per_query_metrics, top_rows
from twotower.deep_memory.report import jobs_table, progress_text, results_text, status_table
from twotower.deep_memory.settings import TrainingSettings
from twotower.io.atomic import atomic_path, write_json

__all__ = ["DeepMemory", "UnknownIdsError"]


class DeepMemory:
    """Deep memory of one `VectorStore`: jobs and models live in `<store>/deep_memory/`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.path / "deep_memory"
        self.jobs_dir = self.root / "jobs"
        self._procs: dict[str, subprocess.Popen] = {}
        self._adapter_cache: tuple[str, QueryAdapter] | None = None
        self._numpy_cache: tuple[QueryAdapter, Any] | None = None
        self._active_cache: tuple[float, str | None] | None = None

    # ---------------------------------------------------------------- training
    def train(
        self,
        queries: Sequence[str],
        relevance: Relevance,
        embedding_function: EmbeddingFunction | None = None,
        unknown_ids: str = "raise",
        config: str | None = None,
        **settings: Any,
    ) -> str:
        """Start training a query adapter in a background process; returns the job id at once.

        `relevance[i]` lists `(doc_id, score)` pairs for `queries[i]`, scores in [0, 1] (0: not relevant).
        Settings (`batch_size`, `learning_rate`, `epochs`, `validation_split`, `early_stopping_patience`,
        `inference_batch_size`, `adapter={...}`, ...) override `TrainingSettings` (and
        `twotower/conf/deep_memory/<config or default>.yaml`). Bad input raises here, before any job exists.
        """
        checked = check_relevance(self.store, queries, relevance, unknown_ids)
        queries, rows, weights = checked.queries, checked.rows, checked.weights
        if unknown_ids == "skip":
            keep = [i for i, r in enumerate(rows) if r and max(weights[i]) > 0]
            if not keep:
                raise ValueError("no query has a relevant document left in the store")
            queries, rows, weights = [queries[i] for i in keep], [rows[i] for i in keep], [weights[i] for i in keep]
        resolved = TrainingSettings.load(settings, config)
        split_sizes(len(queries), resolved.validation_split)
        function = embedding_function or self.store.embedding_function
        dim = self.store.dim
        probe = embed(function, queries[:1], dim, "queries")  # a wrong dimension fails here, not in the job
        payload = J.picklable(function)

        job_id = J.new_job_id()
        folder = J.JobFolder(self.jobs_dir, job_id)
        folder.dir.mkdir(parents=True)
        embedded = np.zeros((0, dim), np.float32) if payload else embed(function, queries, dim, "queries")
        data = RelevanceData.from_lists(embedded, rows, weights)
        if payload:
            with atomic_path(folder.dir / "embedding.pkl") as tmp:
                tmp.write_bytes(payload)
            write_json(folder.dir / "queries.json", {"queries": queries})
        with atomic_path(folder.dir / "relevance.npz") as tmp:
            data.save(tmp)
        write_json(folder.dir / "settings.json", resolved.to_dict())
        write_json(
            folder.job_file,
            {
                "id": job_id,
                "status": "pending",
                "created_at": J.now(),
                "updated_at": J.now(),
                "n_queries": len(queries),
                "n_pairs": int(len(data.doc_rows)),
                "unknown_ids": checked.unknown,
                "dim": int(probe.shape[1]),
                "store_count": len(self.store),
                "embedding_function": describe(function),
                "settings": resolved.to_dict(),
                "progress": None,
                "results": None,
                "checksums": folder.input_checksums(),  # checked by the worker before it reads them
            },
        )
        digest = hashlib.sha256(payload).hexdigest() if payload else None
        self._procs[job_id] = J.launch(self.jobs_dir, job_id, self.store.path, payload_sha256=digest)
        return job_id

    # ------------------------------------------------------------------ status
    def _job(self, job_id: str) -> dict:
        proc = self._procs.get(job_id)
        if proc is not None:
            proc.poll()  # reap our own finished worker so it is not mistaken for a live one
        job = J.reconcile(J.JobFolder(self.jobs_dir, job_id))
        if job["status"] not in J.ACTIVE:
            self._active_cache = None  # a job just finished here: let the next search see its model
        return job

    def job_ids(self) -> list[str]:
        if not self.jobs_dir.exists():
            return []
        return sorted(p.name for p in self.jobs_dir.iterdir() if (p / "job.json").exists())

    def status(self, job_id: str, print_table: bool = True) -> dict:
        """Print the job's table (status, progress, results) and return it as a dict."""
        job = self._job(job_id)
        row = {
            "id": job_id,
            "status": job["status"],
            "progress": progress_text(job),
            "results": results_text(job),
            "accepted": job.get("accepted"),
            "reason": job.get("reason"),
            "job": job,
        }
        if print_table:
            print(status_table(row))
        return row

    def list_jobs(self, print_table: bool = True) -> list[dict]:
        """One row per job (oldest first): id, status, results, progress."""
        rows = [self.status(j, print_table=False) for j in self.job_ids()]
        if print_table:
            from rich.console import Console

            Console().print(jobs_table(f"deep memory jobs: {self.store.path}", rows))
        return rows

    def cancel(self, job_id: str) -> dict:
        """Stop a pending or running job (a finished job is left as it is). Returns its record."""
        self._job(job_id)
        return J.request_cancel(J.JobFolder(self.jobs_dir, job_id))

    def delete(self, job_id: str) -> None:
        """Remove a finished job and its model (a pending or training job must be cancelled first)."""
        job = self._job(job_id)
        if job["status"] in J.ACTIVE:
            raise ValueError(f"job {job_id} is {job['status']}: cancel it before deleting it")
        selected = self.root / "selected.json"
        if selected.exists() and J.read_json(selected)["job_id"] == job_id:
            selected.unlink()
        shutil.rmtree(self.jobs_dir / job_id)
        self._active_cache = None
        if self._adapter_cache and self._adapter_cache[0] == job_id:
            self._adapter_cache = None

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.5) -> dict:
        """Block until the job is no longer pending or training; returns its record."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self._job(job_id)
            if job["status"] not in J.ACTIVE:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"deep-memory job {job_id} still {job['status']} after {timeout} s")
            time.sleep(poll)

    # ------------------------------------------------------------------ models
    def set_model(self, job_id: str | None, force: bool = False) -> None:
        """Use this job's model for `search(deep_memory=True)` (None: back to the latest accepted one).

        A model that did not beat plain search on its validation split needs `force=True`.
        """
        path = self.root / "selected.json"
        self._active_cache = None
        if job_id is None:
            path.unlink(missing_ok=True)
            return
        job = self._job(job_id)
        if job["status"] != "completed":
            raise ValueError(f"job {job_id} is {job['status']}; only a completed job has a model")
        if not job.get("accepted") and not force:
            raise ValueError(
                f"job {job_id}'s model was not accepted ({job.get('reason')}); pass force=True to use it anyway"
            )
        write_json(path, {"job_id": job_id, "forced": bool(force and not job.get("accepted"))})

    def active_job(self, max_age: float = 0.0) -> str | None:
        """The job whose model deep-memory search uses: the one set with `set_model`, else the latest
        completed and accepted job; None when there is none.

        `max_age` > 0 reuses an answer at most that many seconds old (search does, with 1 s: resolving
        reads every job's record, which would otherwise cost more than the search on small stores).
        """
        if max_age > 0 and self._active_cache and time.monotonic() - self._active_cache[0] < max_age:
            return self._active_cache[1]
        job_id = self._resolve_active_job()
        self._active_cache = (time.monotonic(), job_id)
        return job_id

    def _resolve_active_job(self) -> str | None:
        path = self.root / "selected.json"
        if path.exists():
            chosen = J.read_json(path)["job_id"]
            if (self.jobs_dir / chosen / "model.pt").exists():
                return chosen
        for job_id in reversed(self.job_ids()):
            job = J.JobFolder(self.jobs_dir, job_id).read()
            if job["status"] == "completed" and job.get("accepted"):
                return job_id
        return None

    def no_model_reason(self) -> str:
        completed = [j for j in self.job_ids() if J.JobFolder(self.jobs_dir, j).read()["status"] == "completed"]
        if completed:
            return (
                f"deep_memory=True: no accepted model (the {len(completed)} completed job(s) did not beat plain search "
                "on their validation split); searching without deep memory. Use deep_memory.set_model(job_id, force=True) to override."
            )
        return "deep_memory=True: no trained deep-memory model in this store yet; searching without deep memory"

    def load_adapter(self, job_id: str) -> QueryAdapter:
        """The job's trained adapter (read once: a job writes its model file once, on completion)."""
        if self._adapter_cache and self._adapter_cache[0] == job_id:
            return self._adapter_cache[1]
        path = self.jobs_dir / job_id / "model.pt"
        if not path.exists():
            raise FileNotFoundError(f"job {job_id} has no model file ({self._job(job_id)['status']})")
        adapter = J.JobFolder(self.jobs_dir, job_id).read_model(self._job(job_id))
        self._adapter_cache = (job_id, adapter)
        return adapter

    def active_adapter(self):
        """A numpy `queries -> adapted queries` function for the active model, or None."""
        job_id = self.active_job(max_age=1.0)
        if job_id is None:
            return None
        adapter = self.load_adapter(job_id)
        if self._numpy_cache is None or self._numpy_cache[0] is not adapter:
            self._numpy_cache = (adapter, adapter.numpy_forward())
        return self._numpy_cache[1]

    # -------------------------------------------------------------- evaluation
    def evaluate(
        self,
        queries: Sequence[str],
        relevance: Relevance,
        top_k: Sequence[int] = (1, 3, 5, 10, 50, 100),
        embedding_function: EmbeddingFunction | None = None,
        job_id: str | None = None,
        query_embeddings: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Recall, MRR and hit rate at each k, with and without the model, on the same queries.

        Returns {"with model": {"recall@1": ..., "mrr@1": ..., "hit_rate@1": ...}, "without model": {...},
        "report": {...}}. Relevant ids missing from the store count as relevant but unretrievable (as
        trec_eval counts them) and are listed in "report". `job_id` picks a model (even a rejected one);
        default: the one `search(deep_memory=True)` uses. Pass `query_embeddings` to skip embedding.
        """
        checked = check_relevance(self.store, queries, relevance, unknown_ids="skip")
        ks = sorted({int(k) for k in top_k})
        if not ks or ks[0] < 1:
            raise ValueError(f"top_k must hold positive integers, got {list(top_k)}")
        job_id = job_id or self.active_job()
        if job_id is None:
            raise ValueError(
                self.no_model_reason().replace("searching without deep memory", "nothing to evaluate")
                + "; or pass job_id="
            )
        adapter = self.load_adapter(job_id)
        if query_embeddings is None:
            function = embedding_function or self.store.embedding_function
            query_embeddings = embed(function, checked.queries, self.store.dim, "queries")
        q = np.asarray(query_embeddings, dtype=np.float32)
        relevant = [{r for r, w in zip(rs, ws) if w > 0} for rs, ws in zip(checked.rows, checked.weights)]
        docs = self.store.embeddings
        out: dict[str, Any] = {}
        for name, vectors in (("with model", adapter.numpy_forward()(q)), ("without model", q)):
            values = per_query_metrics(top_rows(vectors, docs, max(ks)), relevant, ks, checked.n_relevant, REPORTED)
            out[name] = {metric: float(v.mean()) for metric, v in values.items()}
        if checked.unknown:
            warnings.warn(
                f"{len(checked.unknown)} relevant id(s) are not in the store; they count as not retrieved", stacklevel=2
            )
        out["report"] = {"job_id": job_id, "queries": len(checked.queries), "unknown_ids": checked.unknown}
        return out
