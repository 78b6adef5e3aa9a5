"""Deep-memory jobs end to end: background training, status across processes, cancel, crashes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from deep_memory_synthetic import synonym_task

from twotower.deep_memory import HashingEmbedding, UnknownIdsError, VectorStore

SRC = str(Path(__file__).resolve().parents[2] / "src")
FAST = {"epochs": 40, "batch_size": 32, "learning_rate": 1e-2, "validation_split": 0.2, "early_stopping_patience": 40}
# Long enough to still be running when the test interferes, but bounded if something goes wrong.
SLOW = {**FAST, "epochs": 100_000, "early_stopping_patience": 100_000}


def open_store(path) -> VectorStore:
    return VectorStore(path, embedding_function=HashingEmbedding(dim=128))


@pytest.fixture(scope="module")
def task():
    return synonym_task()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, task):
    """A store with one completed job, trained through the public API."""
    path = tmp_path_factory.mktemp("trained") / "store"
    db = open_store(path)
    db.add(task.texts, ids=task.ids)
    job_id = db.deep_memory.train(queries=task.train_queries, relevance=task.train_relevance, **FAST)
    db.deep_memory.wait(job_id, timeout=120)
    return path, job_id


def wait_until_training(db: VectorStore, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = db.deep_memory.status(job_id, print_table=False)["job"]
        if job["status"] == "training" and (job.get("progress") or {}).get("epoch"):
            return job
        assert job["status"] in ("pending", "training"), job
        time.sleep(0.2)
    raise AssertionError("the job never reached a training epoch")


def test_job_lifecycle_is_visible_from_another_process(trained, task):
    path, job_id = trained
    # A fresh interpreter: nothing shared with this one but the store folder.
    script = textwrap.dedent(
        f"""
        import json
        from twotower.deep_memory import HashingEmbedding, VectorStore
        db = VectorStore({str(path)!r}, embedding_function=HashingEmbedding(dim=128))
        jobs = db.deep_memory.list_jobs(print_table=False)
        hits = [db.search(embedding_data=[q], k=10, deep_memory=True)["id"] for q in {task.test_queries!r}]
        plain = [db.search(embedding_data=[q], k=10)["id"] for q in {task.test_queries!r}]
        print(json.dumps({{"jobs": [(j["id"], j["status"], j["accepted"]) for j in jobs], "hits": hits, "plain": plain}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["jobs"] == [[job_id, "completed", True]]
    expected = [r[0][0] for r in task.test_relevance]
    recall_deep = np.mean([want in got for want, got in zip(expected, seen["hits"])])
    recall_plain = np.mean([want in got for want, got in zip(expected, seen["plain"])])
    assert recall_plain < 0.1 and recall_deep > 0.8


def test_status_prints_the_table_and_returns_the_same_data(trained, capsys):
    path, job_id = trained
    row = open_store(path).deep_memory.status(job_id)
    printed = capsys.readouterr().out
    assert job_id in printed and "| status" in printed and "completed" in printed
    assert "recall@10:" in row["results"] and row["results"].splitlines()[0] in printed
    assert row["status"] == "completed" and row["accepted"] is True
    assert row["progress"].startswith("eta:")


def test_evaluate_reports_deep_lake_keys_with_mrr_and_hit_rate(trained, task):
    path, job_id = trained
    result = open_store(path).deep_memory.evaluate(task.test_queries, task.test_relevance, top_k=[1, 10])
    assert set(result) == {"with model", "without model", "report"}
    assert set(result["with model"]) == {"recall@1", "recall@10", "mrr@1", "mrr@10", "hit_rate@1", "hit_rate@10"}
    assert result["with model"]["recall@10"] > result["without model"]["recall@10"] + 0.5
    assert result["report"]["job_id"] == job_id


def test_rejected_models_are_not_served_unless_forced(tmp_path, task):
    db = open_store(tmp_path / "store")
    db.add(task.texts, ids=task.ids)
    noise = [[(task.ids[(7 * i) % len(task.ids)], 1.0)] for i in range(len(task.train_queries))]
    job_id = db.deep_memory.train(task.train_queries, noise, **{**FAST, "epochs": 3})
    job = db.deep_memory.wait(job_id, timeout=120)
    assert job["status"] == "completed" and job["accepted"] is False
    with pytest.warns(UserWarning, match="no accepted model"):
        served = db.search(embedding_data=task.test_queries[:1], k=3, deep_memory=True)
    assert served == db.search(embedding_data=task.test_queries[:1], k=3)
    with pytest.raises(ValueError, match="force=True"):
        db.deep_memory.set_model(job_id)
    db.deep_memory.set_model(job_id, force=True)
    assert db.deep_memory.active_job() == job_id


def test_cancel_stops_a_running_job(tmp_path, task):
    db = open_store(tmp_path / "store")
    db.add(task.texts, ids=task.ids)
    job_id = db.deep_memory.train(task.train_queries, task.train_relevance, **SLOW)
    wait_until_training(db, job_id)
    db.deep_memory.cancel(job_id)
    job = db.deep_memory.wait(job_id, timeout=60)
    assert job["status"] == "cancelled"
    assert db.deep_memory.active_job() is None


def test_a_killed_worker_shows_failed_with_the_reason_and_the_store_still_works(tmp_path, task):
    db = open_store(tmp_path / "store")
    db.add(task.texts, ids=task.ids)
    job_id = db.deep_memory.train(task.train_queries, task.train_relevance, **SLOW)
    job = wait_until_training(db, job_id)
    os.kill(job["pid"], signal.SIGKILL)
    # Another object (as another process would) must notice, without the launcher's process handle.
    other = open_store(tmp_path / "store")
    deadline = time.monotonic() + 30
    while (row := other.deep_memory.status(job_id, print_table=False))["status"] == "training":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert row["status"] == "failed"
    assert "exited without finishing" in row["job"]["reason"]
    assert other.search(embedding_data=["t1ask"], k=2)["id"]
    with pytest.warns(UserWarning):
        other.search(embedding_data=["t1ask"], k=2, deep_memory=True)
    other.deep_memory.delete(job_id)
    assert other.deep_memory.job_ids() == []


@pytest.mark.parametrize(
    "queries,relevance,error,match",
    [
        ([], [], ValueError, "queries is empty"),
        (["q1", "q2"], [[("doc0", 1.0)]], ValueError, "2 queries but 1 relevance"),
        (["q1"], [[("doc0", 1.5)]], ValueError, r"not a number in \[0, 1\]"),
        (["q1"], [[("doc0", -0.1)]], ValueError, r"not a number in \[0, 1\]"),
        (["q1"], [[]], ValueError, "non-empty list"),
        (["q1"], [[("doc0", 0.0)]], ValueError, "nothing relevant"),
        ([""], [[("doc0", 1.0)]], ValueError, "non-empty strings"),
        (["q1"], [[("no-such-doc", 1.0)]], UnknownIdsError, "not in the store"),
    ],
)
def test_bad_input_fails_before_a_job_starts(tmp_path, task, queries, relevance, error, match):
    db = open_store(tmp_path / "store")
    db.add(task.texts, ids=task.ids)
    with pytest.raises(error, match=match):
        db.deep_memory.train(queries, relevance)
    assert db.deep_memory.job_ids() == []


def test_bad_store_or_embedding_fails_before_a_job_starts(tmp_path, task):
    empty = open_store(tmp_path / "empty")
    with pytest.raises(ValueError, match="holds no documents"):
        empty.deep_memory.train(["q"], [[("doc0", 1.0)]])
    db = open_store(tmp_path / "store")
    db.add(task.texts, ids=task.ids)
    with pytest.raises(ValueError, match="wrong|dim|vectors"):
        db.deep_memory.train(task.train_queries, task.train_relevance, embedding_function=HashingEmbedding(dim=32))
    with pytest.raises(ValueError, match="validation queries"):
        db.deep_memory.train(task.train_queries[:5], task.train_relevance[:5])
    with pytest.raises(TypeError, match="unknown deep-memory training setting"):
        db.deep_memory.train(task.train_queries, task.train_relevance, epoch=3)
    assert db.deep_memory.job_ids() == []


def test_a_lambda_is_embedded_up_front_and_skipped_unknown_ids_are_listed(tmp_path, task):
    hashing = HashingEmbedding(dim=128)
    db = VectorStore(tmp_path / "store", embedding_function=lambda texts: hashing(texts))
    db.add(task.texts, ids=task.ids)
    relevance = [r + [("ghost", 0.5)] for r in task.train_relevance]
    job_id = db.deep_memory.train(task.train_queries, relevance, unknown_ids="skip", **{**FAST, "epochs": 2})
    assert db.deep_memory.status(job_id, print_table=False)["job"]["unknown_ids"] == ["ghost"]
    job_dir = tmp_path / "store" / "deep_memory" / "jobs" / job_id
    assert not (job_dir / "embedding.pkl").exists()  # a lambda cannot travel to the worker process
    assert db.deep_memory.wait(job_id, timeout=120)["status"] == "completed"


def flip_a_byte(path: Path) -> None:
    """Damage `path` in place, same size: a bad disk or a torn copy."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))


def test_a_damaged_model_file_is_refused_naming_it(trained, tmp_path):
    import shutil

    from twotower.io.checksum import forget_verified

    path, job_id = trained
    copy = tmp_path / "store"
    shutil.copytree(path, copy)
    model = copy / "deep_memory" / "jobs" / job_id / "model.pt"
    flip_a_byte(model)
    forget_verified()  # as a new process would
    with pytest.raises(ValueError, match=rf"{model} is damaged"):
        open_store(copy).deep_memory.load_adapter(job_id)


def test_a_damaged_job_file_fails_the_job_by_name_before_training(tmp_path, task, monkeypatch):
    from twotower.deep_memory import jobs
    from twotower.deep_memory.worker import run_worker

    db = open_store(tmp_path / "store")
    db.add(task.texts, ids=task.ids)
    monkeypatch.setattr(jobs, "launch", lambda *args, **kwargs: None)  # the worker runs here, after the damage
    job_id = db.deep_memory.train(task.train_queries, task.train_relevance, **FAST)
    relevance = tmp_path / "store" / "deep_memory" / "jobs" / job_id / "relevance.npz"
    flip_a_byte(relevance)

    assert run_worker(tmp_path / "store", job_id) == 1
    job = db.deep_memory.status(job_id, print_table=False)["job"]
    assert job["status"] == "failed" and f"{relevance} is damaged" in job["reason"]
    assert not relevance.with_name("model.pt").exists()
