"""The prepare step: negatives from each source are never relevant; sets are reused and never half-written."""

import pyarrow.parquet as pq
import pytest

from twotower.data.msmarco import Split
from twotower.data.prepare import DONE, PrepareConfig, prepare_triplets, triplet_files


def toy_split():
    topics = ["cooking eggs", "rocket launch", "tax returns", "river fishing", "piano lessons", "bread baking"]
    collection = {f"p{t}{j}": f"{topic} passage {j} about {topic}" for t, topic in enumerate(topics) for j in range(5)}
    queries = {f"q{t}": f"how to do {topic}" for t, topic in enumerate(topics)}
    qrels = {f"q{t}": {f"p{t}0": 1} for t in range(len(topics))}
    candidates = {f"q{t}": [f"p{t}{j}" for j in range(5)] for t in range(len(topics))}
    return Split(queries, qrels, collection, candidates)


@pytest.mark.parametrize("negatives", ["random", "candidates", "bm25"])
def test_negatives_are_never_the_positive(tmp_path, negatives):
    split = toy_split()
    out = prepare_triplets(split, PrepareConfig(negatives=negatives, num_negatives=3, bm25_depth=5), "toy", tmp_path)
    rows = pq.read_table(triplet_files(out)).to_pylist()
    assert len(rows) == 6
    for row in rows:
        assert len(row["neg_pids"]) == 3 and row["pid"] not in row["neg_pids"] and row["teacher"] is None
        if negatives in ("candidates", "bm25"):
            # Hard negatives come from the query's own topic (passage ids p<topic><j>).
            assert sum(n[1] == row["pid"][1] for n in row["neg_pids"]) >= 2


def test_subsample_keeps_a_fraction_of_queries(tmp_path):
    out = prepare_triplets(toy_split(), PrepareConfig(subsample=0.5), "toy", tmp_path)
    assert pq.read_table(triplet_files(out)).num_rows == 3


def test_finished_set_is_reused_and_unfinished_set_refused(tmp_path):
    out = prepare_triplets(toy_split(), PrepareConfig(), "toy", tmp_path / "a")
    stamp = (out / DONE).stat().st_mtime_ns
    assert prepare_triplets(toy_split(), PrepareConfig(), "toy", tmp_path / "a") == out
    assert (out / DONE).stat().st_mtime_ns == stamp
    (out / DONE).unlink()  # as after a crash between shards
    with pytest.raises(FileNotFoundError, match="no finished triplet set"):
        triplet_files(out)


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="subsample"):
        prepare_triplets(toy_split(), PrepareConfig(subsample=0), "toy", tmp_path)
    with pytest.raises(ValueError, match="negatives"):
        prepare_triplets(toy_split(), PrepareConfig(negatives="hardest"), "toy", tmp_path)


def test_pools_that_cannot_fit_are_refused_before_mining_naming_the_settings(tmp_path, monkeypatch):
    import twotower.data.prepare as prepare

    monkeypatch.setattr(prepare, "available_memory", lambda: 10_000)  # 10 kB free
    with pytest.raises(MemoryError, match="lower data.prepare.subsample .* data.prepare.bm25_depth"):
        prepare_triplets(toy_split(), PrepareConfig(negatives="bm25", bm25_depth=50), "toy", tmp_path)
    assert not list(tmp_path.glob("shard-*"))
