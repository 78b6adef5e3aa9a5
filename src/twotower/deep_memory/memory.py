"""`db.deep_memory`: train, watch, cancel, evaluate and choose query adapters for one store."""

from __future__ import annotations

import hashlib
import math
import pickle
import subprocess
import textwrap
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from twotower.atomic import atomic_path
from twotower.deep_memory import jobs as J
from twotower.deep_memory.adapter import QueryAdapter
from twotower.deep_memory.embeddings import EmbeddingFunction, describe
from twotower.deep_memory.evaluation import per_query_metrics, top_k_indices
from twotower.deep_memory.training import RelevanceData, TrainingSettings, split_sizes

if TYPE_CHECKING:
    from twotower.deep_memory.store import VectorStore

Relevance = Sequence[Sequence[tuple[str, float]]]


class UnknownIdsError(KeyError):
    """Relevance pairs name documents that are not in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DeepMemory:
    """Deep memory of one `VectorStore`: jobs and models live in `<store>/deep_memory/`."""

    def __init__(self, store: "VectorStore") -> None:
        self.store = store
        self.root = store.path / "deep_memory"
        self.jobs_dir = self.root / "jobs"
        self._procs: dict[str, subprocess.Popen] = {}
        self._adapter_cache: tuple[str, QueryAdapter] | None = None
        self._numpy_cache: tuple[QueryAdapter, Any] | None = None
        self._active_cache: tuple[float, str | None] | None = None

    # ------------------------------------------------------------------ inputs
    def _relevance(
        self, queries: Sequence[str], relevance: Relevance, unknown_ids: str
    ) -> tuple[list[str], list[list[int]], list[list[float]], list[int], list[str]]:
        """Checked inputs as (queries, rows, weights, relevant-count, unknown ids). Raises on bad input."""
        if isinstance(queries, str):
            raise TypeError("queries must be a list of strings, not one string")
        queries, relevance = list(queries), list(relevance)
        if not queries:
            raise ValueError("queries is empty")
        if len(queries) != len(relevance):
            raise ValueError(f"{len(queries)} queries but {len(relevance)} relevance lists: they must pair up")
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise ValueError(f"query {i} is {q!r}: queries must be non-empty strings")
        if len(self.store) == 0:
            raise ValueError(f"the store at {self.store.path} holds no documents: add() documents before deep memory")
        rows_out, weights_out, n_rel, unknown = [], [], [], []
        for i, pairs in enumerate(relevance):
            if isinstance(pairs, (str, bytes)) or not len(pairs):
                raise ValueError(f"relevance[{i}] must be a non-empty list of (doc_id, score) pairs, got {pairs!r}")
            ids, scores = [], []
            for pair in pairs:
                if isinstance(pair, (str, bytes)) or len(pair) != 2:
                    raise ValueError(f"relevance[{i}] holds {pair!r}; each entry must be a (doc_id, score) pair")
                doc_id, score = pair
                if isinstance(score, bool) or not isinstance(score, (int, float, np.floating, np.integer)) or not 0 <= float(score) <= 1 or math.isnan(float(score)):
                    raise ValueError(f"relevance[{i}]: score {score!r} for {doc_id!r} is not a number in [0, 1]")
                ids.append(str(doc_id))
                scores.append(float(score))
            if max(scores) <= 0:
                raise ValueError(f"relevance[{i}] gives every document score 0: query {i} has nothing relevant to learn from")
            rows, missing = self.store.rows_of(ids)
            unknown.extend(missing)
            known = [s for d, s in zip(ids, scores) if d not in set(missing)]
            rows_out.append(rows)
            weights_out.append(known)
            n_rel.append(sum(1 for s in scores if s > 0))
        if unknown and unknown_ids == "raise":
            uniq = sorted(set(unknown))
            raise UnknownIdsError(
                f"{len(uniq)} document id(s) in relevance are not in the store, e.g. {uniq[:5]}; "
                "fix the ids, or pass unknown_ids='skip' to drop those pairs (they are then listed in the job)"
            )
        if unknown_ids not in ("raise", "skip"):
            raise ValueError(f"unknown_ids must be 'raise' or 'skip', got {unknown_ids!r}")
        return queries, rows_out, weights_out, n_rel, sorted(set(unknown))

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
        `inference_batch_size`, `adapter={...}`, ...) override `conf/deep_memory/<config or default>.yaml`.
        Bad input raises here, before any job exists.
        """
        queries, rows, weights, _, unknown = self._relevance(queries, relevance, unknown_ids)
        if unknown_ids == "skip":
            keep = [i for i, r in enumerate(rows) if r and max(weights[i]) > 0]
            if not keep:
                raise ValueError("no query has a relevant document left in the store")
            queries, rows, weights = [queries[i] for i in keep], [rows[i] for i in keep], [weights[i] for i in keep]
        resolved = TrainingSettings.load(settings, config)
        split_sizes(len(queries), resolved.validation_split)
        function = embedding_function or self.store.embedding_function
        dim = self.store.dim
        from twotower.deep_memory.store import embed

        probe = embed(function, queries[:1], dim, "queries")  # a wrong dimension fails here, not in the job
        payload = _picklable(function)

        job_id = J.new_job_id()
        folder = J.JobFolder(self.jobs_dir, job_id)
        folder.dir.mkdir(parents=True)
        offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
        data = RelevanceData(
            queries=np.zeros((0, dim), np.float32) if payload else embed(function, queries, dim, "queries"),
            offsets=offsets,
            doc_rows=np.asarray([x for r in rows for x in r], dtype=np.int64),
            weights=np.asarray([x for w in weights for x in w], dtype=np.float32),
        )
        if payload:
            with atomic_path(folder.dir / "embedding.pkl") as tmp:
                tmp.write_bytes(payload)
            J.write_json(folder.dir / "queries.json", {"queries": queries})
        with atomic_path(folder.dir / "relevance.npz") as tmp:
            data.save(tmp)
        J.write_json(folder.dir / "settings.json", resolved.to_dict())
        J.write_json(
            folder.job_file,
            {
                "id": job_id,
                "status": "pending",
                "created_at": J.now(),
                "updated_at": J.now(),
                "n_queries": len(queries),
                "n_pairs": int(len(data.doc_rows)),
                "unknown_ids": unknown,
                "dim": int(probe.shape[1]),
                "store_count": len(self.store),
                "embedding_function": describe(function),
                "settings": resolved.to_dict(),
                "progress": None,
                "results": None,
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
            "progress": _progress_text(job),
            "results": _results_text(job),
            "accepted": job.get("accepted"),
            "reason": job.get("reason"),
            "job": job,
        }
        if print_table:
            print(_status_table(row))
        return row

    def list_jobs(self, print_table: bool = True) -> list[dict]:
        """One row per job (oldest first): id, status, results, progress."""
        rows = [self.status(j, print_table=False) for j in self.job_ids()]
        if print_table:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=f"deep memory jobs: {self.store.path}")
            table.add_column("ID", no_wrap=True)
            for name in ("STATUS", "RESULTS", "PROGRESS"):
                table.add_column(name)
            for r in rows:
                table.add_row(r["id"], r["status"], r["results"], r["progress"])
            Console().print(table)
        return rows

    def cancel(self, job_id: str) -> dict:
        """Stop a pending or running job (a finished job is left as it is). Returns its record."""
        self._job(job_id)
        return J.request_cancel(J.JobFolder(self.jobs_dir, job_id))

    def delete(self, job_id: str) -> None:
        """Remove a finished job and its model (a pending or training job must be cancelled first)."""
        import shutil

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
        import time

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
            raise ValueError(f"job {job_id}'s model was not accepted ({job.get('reason')}); pass force=True to use it anyway")
        J.write_json(path, {"job_id": job_id, "forced": bool(force and not job.get("accepted"))})

    def active_job(self, max_age: float = 0.0) -> str | None:
        """The job whose model deep-memory search uses: the one set with `set_model`, else the latest
        completed and accepted job; None when there is none.

        `max_age` > 0 reuses an answer at most that many seconds old (search does, with 1 s: resolving
        reads every job's record, which would otherwise cost more than the search on small stores).
        """
        import time

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
        saved = torch.load(path, map_location="cpu", weights_only=True)
        adapter = QueryAdapter(**saved["config"])
        adapter.load_state_dict(saved["state_dict"])
        adapter.eval()
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
        queries, rows, weights, n_rel, unknown = self._relevance(queries, relevance, unknown_ids="skip")
        ks = sorted({int(k) for k in top_k})
        if not ks or ks[0] < 1:
            raise ValueError(f"top_k must hold positive integers, got {list(top_k)}")
        job_id = job_id or self.active_job()
        if job_id is None:
            raise ValueError(self.no_model_reason().replace("searching without deep memory", "nothing to evaluate") + "; or pass job_id=")
        adapter = self.load_adapter(job_id)
        if query_embeddings is None:
            from twotower.deep_memory.store import embed

            query_embeddings = embed(embedding_function or self.store.embedding_function, queries, self.store.dim, "queries")
        q = np.asarray(query_embeddings, dtype=np.float32)
        relevant = [{r for r, w in zip(rs, ws) if w > 0} for rs, ws in zip(rows, weights)]
        docs = self.store.embeddings
        adapted = adapter.numpy_forward()(q)
        out: dict[str, Any] = {}
        for name, vectors in (("with model", adapted), ("without model", q)):
            top = top_k_indices(vectors, docs, max(ks))
            values = per_query_metrics(top, relevant, ks, n_rel)
            out[name] = {metric: float(v.mean()) for metric, v in values.items()}
        if unknown:
            warnings.warn(f"{len(unknown)} relevant id(s) are not in the store; they count as not retrieved", stacklevel=2)
        out["report"] = {"job_id": job_id, "queries": len(queries), "unknown_ids": unknown}
        return out


def _picklable(function: EmbeddingFunction) -> bytes | None:
    """Pickled `function` if a fresh worker process can rebuild it, else None (the caller embeds).

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


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _progress_text(job: dict) -> str:
    progress = job.get("progress")
    if not progress:
        return "None"
    eta = progress.get("eta_seconds")
    lines = [f"eta: {eta:.1f} seconds" if eta is not None else "eta: unknown"]
    if progress.get("stage") == "embedding queries":
        lines.append(f"embedding queries: {progress['done']}/{progress['total']}")
    best, base = progress.get("best_val"), progress.get("base_val")
    if best and base and "recall@10" in best:
        lines.append(f"recall@10: {_pct(best['recall@10'])} ({100 * (best['recall@10'] - base['recall@10']):+.2f}%)")
    if progress.get("epoch"):
        lines.append(f"epoch: {progress['epoch']}/{progress['epochs']}")
    return "\n".join(lines)


def _results_text(job: dict) -> str:
    status = job["status"]
    if status in J.ACTIVE:
        return "not available yet"
    if status != "completed":
        return f"{status}: {job.get('reason', '')}"
    res = job["results"]
    best, base = res["best_val"], res["base_val"]
    gain = best["recall@10"] - base["recall@10"]
    rel = f", {100 * gain / base['recall@10']:+.1f}% relative" if base["recall@10"] else ""
    text = f"recall@10: {_pct(best['recall@10'])} ({100 * gain:+.2f}%{rel})\nmrr@10: {best['mrr@10']:.4f} (base {base['mrr@10']:.4f})"
    flag = "accepted: used by deep_memory=True" if job.get("accepted") else "NOT ACCEPTED: " + job.get("reason", "")
    return text + "\n" + flag


def _status_table(row: dict) -> str:
    """The Deep Lake status table: a banner with the id, then status / progress / results rows."""
    left, right = 26, 60
    width = left + right + 7
    rule = "-" * width
    lines = [rule, "|" + row["id"].center(width - 2) + "|", rule]
    for key in ("status", "progress", "results"):
        values = []
        for line in str(row[key]).splitlines() or [""]:
            values.extend(textwrap.wrap(line, right, break_long_words=True) or [""])
        for i, value in enumerate(values):
            lines.append(f"| {(key if i == 0 else ''):<{left}} | {value:<{right}} |")
        lines.append(rule)
    return "\n".join(lines)
