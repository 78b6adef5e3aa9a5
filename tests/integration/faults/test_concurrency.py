"""Concurrency without false alarms (issue 18, section 5): many processes at one store or one triplet set.

Before: 4 processes adding to a Deep Memory store at once made some of them fail with a false "the store is
damaged" (documents.parquet and embeddings.npy were read, outside the lock, from two different versions while
another process swapped the folder); two trainings preparing the same triplet set could leave it marked
finished without its shards, and a finished set whose shard was deleted was reused as it was.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pyarrow.parquet as pq

WRITERS, ADDS = 8, 20


def _add_many(store_path: str, writer: int, barrier, errors) -> None:
    from twotower.deep_memory import HashingEmbedding, VectorStore

    db = VectorStore(store_path, embedding_function=HashingEmbedding(dim=8))
    barrier.wait(timeout=60)
    try:
        for j in range(ADDS):
            db.add([f"writer {writer} document {j}"], ids=[f"w{writer}-d{j}"])
            len(db)  # a reader too: it must always see one consistent version
    except Exception as exc:  # noqa: BLE001 - the test reports every error a writer met
        errors.put(f"writer {writer}: {type(exc).__name__}: {exc}")
        raise


def test_eight_processes_adding_twenty_times_each_keep_every_add_without_a_false_damage_error(tmp_path):
    from twotower.deep_memory import HashingEmbedding, VectorStore

    ctx = multiprocessing.get_context("fork")  # the children use numpy and pyarrow only
    barrier, errors = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=_add_many, args=(str(tmp_path / "store"), w, barrier, errors)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    seen = []
    while not errors.empty():
        seen.append(errors.get())
    assert seen == [] and [p.exitcode for p in procs] == [0] * WRITERS

    db = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=8))
    assert sorted(db.ids) == sorted(f"w{w}-d{j}" for w in range(WRITERS) for j in range(ADDS))
    assert len(db.embeddings) == db.info()["count"] == WRITERS * ADDS


# ------------------------------------------------------------------------------------------- triplet sets


def _prepare(split_dir: str, cache: str, per_row: float, start_after: float, barrier) -> None:
    """One training's prepare step, slowed to `per_row` seconds a row and started `start_after` seconds late,
    which then reads the set it was handed as a training would: every shard its `_SUCCESS.json` counts."""
    import json
    import os

    os.environ["TWOTOWER_CACHE"] = cache
    import twotower.data.prepare as prepare
    from twotower.data.msmarco import passage_split

    add = prepare.ShardWriter.add

    def slow_add(self, *args, **kwargs):
        time.sleep(per_row)
        return add(self, *args, **kwargs)

    prepare.ShardWriter.add = slow_add
    split = passage_split("train", Path(split_dir))
    barrier.wait(timeout=60)
    time.sleep(start_after)
    out = prepare.prepare_triplets(split, prepare.PrepareConfig(shard_rows=20), "train-test", inputs="same")
    files = prepare.triplet_files(out)
    done = json.loads((out / "_SUCCESS.json").read_text())
    assert len(files) == done["shards"], f"{out} is marked finished with {len(files)} of {done['shards']} shards"
    assert pq.read_table(files).num_rows == done["rows"]


def test_two_processes_preparing_one_triplet_set_leave_it_finished_with_all_its_shards(small_msmarco, tmp_path):
    from twotower.data.prepare import PrepareConfig, triplet_files

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    root = small_msmarco / "msmarco-passage"
    # The first builds quickly; the second starts while the first is half way and builds slowly.
    timing = [(0.003, 0.0), (0.02, 0.3)]
    procs = [
        ctx.Process(target=_prepare, args=(str(root), str(tmp_path / "cache"), per_row, start, barrier))
        for per_row, start in timing
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]

    out = tmp_path / "cache" / "triplets" / PrepareConfig(shard_rows=20).key("train-test", "same")
    assert pq.read_table(triplet_files(out)).num_rows > 0


def test_a_finished_triplet_set_with_a_deleted_shard_is_rebuilt_with_one_log_line(small_msmarco, caplog):
    from twotower.data.msmarco import passage_split
    from twotower.data.prepare import PrepareConfig, prepare_triplets, triplet_files

    split = passage_split("train", small_msmarco / "msmarco-passage")
    config = PrepareConfig(shard_rows=20)
    out = prepare_triplets(split, config, "train-deleted-shard")
    before = pq.read_table(triplet_files(out)).num_rows
    triplet_files(out)[1].unlink()

    with caplog.at_level("INFO", logger="twotower"):
        again = prepare_triplets(split, config, "train-deleted-shard")
    assert again == out
    assert pq.read_table(triplet_files(out)).num_rows == before
    assert any("shard-00001.parquet" in r.getMessage() and "rebuil" in r.getMessage() for r in caplog.records)
