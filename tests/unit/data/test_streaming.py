"""The triplet stream reads parquet shards lazily and yields every triplet exactly once per epoch."""

from collections import Counter

import pytest
from torch.utils.data import DataLoader

from twotower.data.datamodule import TripletStream
from twotower.data.msmarco import Split
from twotower.data.prepare import PrepareConfig, prepare_triplets, triplet_files


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    collection = {f"p{i}": f"passage number {i}" for i in range(400)}
    queries = {f"q{i}": f"query number {i}" for i in range(300)}
    qrels = {f"q{i}": {f"p{i}": 1} for i in range(300)}
    config = PrepareConfig(num_negatives=2, shard_rows=70, row_group_rows=16, seed=3)
    out = prepare_triplets(Split(queries, qrels, collection), config, "synthetic", tmp_path_factory.mktemp("t"))
    return triplet_files(out)


def queries_seen(stream, num_workers):
    loader = DataLoader(stream, batch_size=7, num_workers=num_workers, collate_fn=lambda rows: rows)
    return Counter((row["qid"], row["pid"]) for batch in loader for row in batch)


@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_each_triplet_once_per_epoch(shards, num_workers):
    seen = queries_seen(TripletStream(shards, shuffle_buffer=50), num_workers)
    assert len(seen) == 300 and set(seen.values()) == {1}


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_split_the_stream_evenly_without_overlap(shards, world_size):
    per_rank = [
        queries_seen(TripletStream(shards, shuffle_buffer=50, rank=r, world_size=world_size), 2)
        for r in range(world_size)
    ]
    together = sum(per_rank, Counter())
    assert set(together.values()) == {1}  # nobody sees a triplet twice
    # Equal shares, or DDP's all-reduce would hang; only a row group's remainder sits out.
    assert len({sum(c.values()) for c in per_rank}) == 1
    assert 300 - len(together) < 19 * world_size
    assert len(TripletStream(shards, rank=0, world_size=world_size)) == sum(per_rank[0].values())


def test_order_is_reshuffled_each_epoch_and_reproducible(shards):
    def order(epoch):
        stream = TripletStream(shards, shuffle_buffer=50, seed=1)
        stream.epoch = epoch
        return [(row["qid"], row["pid"]) for row in stream]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == sorted(order(1))


def test_shards_hold_row_groups_and_negatives_are_not_positives(shards):
    import pyarrow.parquet as pq

    assert len(shards) == 5  # 300 rows / 70 per shard
    assert pq.ParquetFile(shards[0]).num_row_groups == 5  # 70 rows / 16 per group
    table = pq.read_table(shards)
    for row in table.to_pylist():
        assert len(row["neg_pids"]) == 2 and row["pid"] not in row["neg_pids"]
