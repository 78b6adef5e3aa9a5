"""The prepare step: negatives from each source are never relevant and come from the source's rank window; a
source of one's own is a class; sets are reused, keyed by every setting, and never half-written."""

from dataclasses import dataclass, replace

import pyarrow.parquet as pq
import pytest

from twotower.data.msmarco import Split
from twotower.data.negatives import BM25Negatives, CandidateNegatives, MixedNegatives, NegativeSource, RandomNegatives
from twotower.data.prepare import DONE, PrepareConfig, prepare_triplets, triplet_files


def toy_split():
    topics = ["cooking eggs", "rocket launch", "tax returns", "river fishing", "piano lessons", "bread baking"]
    collection = {f"p{t}{j}": f"{topic} passage {j} about {topic}" for t, topic in enumerate(topics) for j in range(5)}
    queries = {f"q{t}": f"how to do {topic}" for t, topic in enumerate(topics)}
    qrels = {f"q{t}": {f"p{t}0": 1} for t in range(len(topics))}
    candidates = {f"q{t}": [f"p{t}{j}" for j in range(5)] for t in range(len(topics))}
    return Split(queries, qrels, collection, candidates)


SOURCES = {
    "random": RandomNegatives(),
    "candidates": CandidateNegatives(),
    "bm25": BM25Negatives(depth=5, skip=0),
    "bm25+candidates": MixedNegatives({"bm25": BM25Negatives(depth=5, skip=0), "candidates": CandidateNegatives()}),
}


@pytest.mark.parametrize("negatives", SOURCES)
def test_negatives_are_never_the_positive(tmp_path, negatives):
    split = toy_split()
    out = prepare_triplets(split, PrepareConfig(negatives=SOURCES[negatives], num_negatives=3), "toy", tmp_path)
    rows = pq.read_table(triplet_files(out)).to_pylist()
    assert len(rows) == 6
    for row in rows:
        assert len(row["neg_pids"]) == 3 and row["pid"] not in row["neg_pids"] and row["teacher"] is None
        if negatives != "random":
            # Hard negatives come from the query's own topic (passage ids p<topic><j>).
            assert sum(n[1] == row["pid"][1] for n in row["neg_pids"]) >= 2


def test_bm25_negatives_come_from_its_rank_window():
    from twotower.data.dict_corpus import as_corpus
    from twotower.retrieval.bm25 import bm25_index, mine

    split = toy_split()
    ranked = mine(bm25_index(as_corpus(split.collection), progress=False), split.queries, 6, progress=False)
    pools = BM25Negatives(depth=3, skip=2).pools(split, list(split.queries))
    assert pools == {q: ranked[q][2:5] for q in split.queries}  # ranks 2, 3, 4
    # A mix interleaves its sources' rankings (each has an equal share of the pool), dropping repeats.
    mixed = MixedNegatives({"bm25": BM25Negatives(depth=3, skip=2), "candidates": CandidateNegatives()})
    interleaved = [p for pair in zip(ranked["q0"][2:5], split.candidates["q0"]) for p in pair]
    assert mixed.pools(split, ["q0"]) == {"q0": list(dict.fromkeys(interleaved))}


@dataclass(frozen=True)
class SameTopicNegatives(NegativeSource):
    """A source of one's own: the other passages of the positive's topic (ids p<topic><j>), as a test would."""

    per_query: int = 4
    name = "same-topic"

    def pools(self, split, qids, miner=None):
        return {q: [f"p{q[1:]}{j}" for j in range(1, 1 + self.per_query)] for q in qids}


def test_a_source_of_ones_own_is_a_class_and_every_setting_keys_the_set(tmp_path):
    split = toy_split()
    out = prepare_triplets(
        split, PrepareConfig(negatives=SameTopicNegatives(per_query=2), num_negatives=2), "toy", tmp_path / "a"
    )
    rows = pq.read_table(triplet_files(out)).to_pylist()
    assert all(sorted(r["neg_pids"]) == [f"{r['pid'][:-1]}1", f"{r['pid'][:-1]}2"] for r in rows)

    keys = {
        PrepareConfig(negatives=source).key("toy")
        for source in (
            SameTopicNegatives(per_query=2),
            SameTopicNegatives(per_query=3),
            BM25Negatives(depth=5, skip=0),
            BM25Negatives(depth=5, skip=1),
            BM25Negatives(depth=6, skip=0),
            MixedNegatives({"bm25": BM25Negatives(), "candidates": CandidateNegatives()}),
            MixedNegatives({"candidates": CandidateNegatives(), "bm25": BM25Negatives()}),  # the order draws otherwise
            CandidateNegatives(run_file="a.run"),
        )
    }
    assert len(keys) == 8
    assert PrepareConfig(negatives=BM25Negatives(depth=5)).key("toy") == PrepareConfig(
        negatives={"_target_": "twotower.data.negatives.BM25Negatives", "depth": 5}
    ).key("toy")


def test_a_new_source_is_a_class_and_a_yaml_file(tmp_path):
    """`negatives=same_topic` picks the YAML beside the shipped ones (here on Hydra's search path); the prepare
    step draws from the class it names."""
    from hydra.utils import instantiate

    from twotower.api import compose_config

    (tmp_path / "conf" / "negatives").mkdir(parents=True)
    (tmp_path / "conf" / "negatives" / "same_topic.yaml").write_text(
        "# @package data.prepare.negatives\n_target_: test_prepare.SameTopicNegatives\nper_query: 2\n"
    )
    cfg = compose_config(
        ["negatives=same_topic", "negatives.per_query=3", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]
    )
    prepare = instantiate(cfg.data).prepare
    assert prepare.negatives == SameTopicNegatives(per_query=3)
    rows = pq.read_table(triplet_files(prepare_triplets(toy_split(), prepare, "toy", tmp_path / "t"))).to_pylist()
    assert all(sorted(r["neg_pids"]) == [f"{r['pid'][:-1]}{j}" for j in (1, 2, 3)] for r in rows)


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
    with pytest.raises(ValueError, match="data.prepare.negatives must be a negative source"):
        prepare_triplets(toy_split(), PrepareConfig(negatives="hardest"), "toy", tmp_path)
    with pytest.raises(ValueError, match="negatives.depth must be a whole number >= 1, got 0"):
        BM25Negatives(depth=0)
    with pytest.raises(ValueError, match="negatives=dense mines with a teacher: set data.prepare.teacher"):
        prepare_triplets(
            toy_split(),
            PrepareConfig(negatives={"_target_": "twotower.data.negatives.DenseNegatives"}),
            "toy",
            tmp_path,
        )
    with pytest.raises(ValueError, match="negatives=candidates needs candidate lists"):
        prepare_triplets(
            replace(toy_split(), candidates={}), PrepareConfig(negatives=CandidateNegatives()), "toy", tmp_path
        )


def test_pools_that_cannot_fit_are_refused_before_mining_naming_the_settings(tmp_path, monkeypatch):
    import twotower.data.prepare as prepare

    monkeypatch.setattr(prepare, "available_memory", lambda: 10_000)  # 10 kB free
    with pytest.raises(MemoryError, match="lower data.prepare.subsample .* negatives.depth"):
        prepare_triplets(toy_split(), PrepareConfig(negatives=BM25Negatives(depth=50)), "toy", tmp_path)
    assert not list(tmp_path.glob("shard-*"))


def test_zero_negatives_writes_positives_only_for_in_batch_training(tmp_path):
    """`data.prepare.num_negatives=0 loss=contrastive`: rows carry no hard negative; the loss uses the batch's
    other positives. Which losses may train so is checked once, by `training.validate`, before data work."""
    rows = pq.read_table(triplet_files(prepare_triplets(toy_split(), PrepareConfig(num_negatives=0), "toy", tmp_path)))
    assert rows.num_rows > 0 and all(r == [] for r in rows.column("neg_pids").to_pylist())
    with pytest.raises(ValueError, match="num_negatives must be a whole number >= 0, got -1"):
        PrepareConfig(num_negatives=-1).check()
