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


def _slow_disk() -> None:
    """Reading documents.parquet takes a little while, so another process can commit between two file reads."""
    import pyarrow.parquet

    read_table = pyarrow.parquet.read_table

    def slow_read_table(*args, **kwargs):
        table = read_table(*args, **kwargs)
        time.sleep(0.01)
        return table

    pyarrow.parquet.read_table = slow_read_table


def _add_many(store_path: str, writer: int, barrier, errors) -> None:
    from twotower.deep_memory import HashingEmbedding, VectorStore

    _slow_disk()
    db = VectorStore(store_path, embedding_function=HashingEmbedding(dim=8))
    barrier.wait(timeout=60)
    try:
        for j in range(ADDS):
            db.add([f"writer {writer} document {j}"], ids=[f"w{writer}-d{j}"])
    except Exception as exc:  # noqa: BLE001 - the test reports every error a writer met
        errors.put(f"writer {writer}: {type(exc).__name__}: {exc}")
        raise


def _read_until(store_path: str, done, barrier, errors) -> None:
    """A reader that opens the store afresh again and again while the writers add: always one whole version."""
    from twotower.deep_memory import HashingEmbedding, VectorStore

    _slow_disk()
    barrier.wait(timeout=60)
    while not done.is_set():
        try:
            db = VectorStore(store_path, embedding_function=HashingEmbedding(dim=8))
            if len(db):  # a store only grows: once it holds documents, a search reads them all
                assert db.search("writer 1 document 3", k=3)["id"]
            time.sleep(0.005)
        except Exception as exc:  # noqa: BLE001
            errors.put(f"reader: {type(exc).__name__}: {exc}")
            raise


def test_eight_processes_adding_twenty_times_each_keep_every_add_without_a_false_damage_error(tmp_path):
    from twotower.deep_memory import HashingEmbedding, VectorStore

    ctx = multiprocessing.get_context("fork")  # the children use numpy and pyarrow only
    readers = 2
    barrier, errors, done = ctx.Barrier(WRITERS + readers), ctx.Queue(), ctx.Event()
    store = str(tmp_path / "store")
    writers = [ctx.Process(target=_add_many, args=(store, w, barrier, errors)) for w in range(WRITERS)]
    reading = [ctx.Process(target=_read_until, args=(store, done, barrier, errors)) for _ in range(readers)]
    for p in writers + reading:
        p.start()
    for p in writers:
        p.join(timeout=120)
    done.set()
    for p in reading:
        p.join(timeout=60)
    seen = []
    while not errors.empty():
        seen.append(errors.get())
    assert seen == [] and [p.exitcode for p in writers + reading] == [0] * (WRITERS + readers)

    db = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=8))
    assert sorted(db.ids) == sorted(f"w{w}-d{j}" for w in range(WRITERS) for j in range(ADDS))
    assert len(db.embeddings) == db.info()["count"] == WRITERS * ADDS


# ------------------------------------------------------------------------------------------- triplet sets


def _prepare(split_dir: str, cache: str, role: str, first_has_a_shard, second_is_writing) -> None:
    """One training's prepare step, which then reads the set it was handed as a training would: every shard its
    `_SUCCESS.json` counts. The two roles are ordered by events: the second starts once the first has written a
    shard, and the first goes on once the second is writing too (or after 3 s, if the second has to wait)."""
    import json
    import os

    os.environ["TWOTOWER_CACHE"] = cache
    import twotower.data.prepare as prepare
    from twotower.data.msmarco import passage_split

    writer = prepare.ShardWriter
    if role == "first":
        flush = writer._flush

        def flush_then_let_the_second_start(self):
            flush(self)
            if not first_has_a_shard.is_set():
                first_has_a_shard.set()
                second_is_writing.wait(timeout=3)

        writer._flush = flush_then_let_the_second_start
    else:
        init, add = writer.__init__, writer.add

        def init_and_say_so(self, *args, **kwargs):
            init(self, *args, **kwargs)
            second_is_writing.set()

        def slow_first_add(self, *args, **kwargs):  # the first finishes before this one writes a shard
            if not self.total and not self.rows["qid"]:
                time.sleep(1)
            return add(self, *args, **kwargs)

        writer.__init__, writer.add = init_and_say_so, slow_first_add
    split = passage_split("train", Path(split_dir))
    if role == "second":
        assert first_has_a_shard.wait(timeout=60)
    out = prepare.prepare_triplets(split, prepare.PrepareConfig(shard_rows=20), "train-test", inputs="same")
    files = prepare.triplet_files(out)
    done = json.loads((out / "_SUCCESS.json").read_text())
    assert len(files) == done["shards"], f"{out} is marked finished with {len(files)} of {done['shards']} shards"
    assert pq.read_table(files).num_rows == done["rows"]


def test_two_processes_preparing_one_triplet_set_leave_it_finished_with_all_its_shards(small_msmarco, tmp_path):
    from twotower.data.prepare import PrepareConfig, triplet_files

    ctx = multiprocessing.get_context("fork")
    first_has_a_shard, second_is_writing = ctx.Event(), ctx.Event()
    root = small_msmarco / "msmarco-passage"
    procs = [
        ctx.Process(
            target=_prepare, args=(str(root), str(tmp_path / "cache"), role, first_has_a_shard, second_is_writing)
        )
        for role in ("first", "second")
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
