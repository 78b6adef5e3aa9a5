"""Learning from a teacher: teacher scores joined to the triplets by id, dense mining, a resumable teacher
cache keyed by teacher and corpus, and a tiny distillation run end to end (a tiny random BERT teaches)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from twotower import api
from twotower.data.msmarco import passage_split
from twotower.data.negatives import BM25Negatives, DenseNegatives
from twotower.data.prepare import PrepareConfig, prepare_triplets, triplet_files
from twotower.data.teacher import load_teacher


@pytest.fixture(scope="module")
def split(small_msmarco):
    return passage_split("train", small_msmarco / "msmarco-passage")


def rows_of(out):
    return pq.read_table(triplet_files(out)).to_pylist()


def test_teacher_scores_travel_with_the_ids_they_score(split, tiny_bert, tmp_path):
    config = PrepareConfig(negatives=BM25Negatives(depth=20), num_negatives=3, teacher=str(tiny_bert), subsample=0.2)
    rows = rows_of(prepare_triplets(split, config, "small", tmp_path / "t"))
    teacher = load_teacher(str(tiny_bert))
    for row in rows[:10]:  # recomputed from scratch, text by text
        q = teacher._encode([split.queries[row["qid"]]], "query")[0]
        docs = teacher._encode([split.collection[p] for p in [row["pid"], *row["neg_pids"]]], "document")
        assert np.allclose(row["teacher"], docs @ q, atol=1e-5)


def test_dense_negatives_come_from_the_teachers_rank_window_and_are_never_relevant(split, tiny_bert, tmp_path):
    config = PrepareConfig(
        negatives=DenseNegatives(depth=10, skip=2), num_negatives=4, teacher=str(tiny_bert), subsample=0.2
    )
    out = prepare_triplets(split, config, "small", tmp_path / "d")
    teacher = load_teacher(str(tiny_bert))
    pids = list(split.collection)
    passages = teacher._encode([split.collection[p] for p in pids], "document")
    for row in rows_of(out)[:15]:
        q = teacher._encode([split.queries[row["qid"]]], "query")[0]
        ranked = [pids[i] for i in np.argsort(-(passages @ q), kind="stable")]
        window = set(ranked[2:12])
        relevant = set(split.qrels[row["qid"]])
        assert not relevant & set(row["neg_pids"])
        # Negatives come from the window (topped up at random only when the window held too few non-relevant).
        assert len(set(row["neg_pids"]) & window) >= min(4, len(window - relevant))


def test_the_margin_drops_what_the_teacher_scores_near_the_positive(split, tiny_bert, tmp_path):
    config = PrepareConfig(
        negatives=DenseNegatives(depth=30, skip=0),
        num_negatives=2,
        teacher=str(tiny_bert),
        teacher_margin=0.0,
        subsample=0.2,
    )
    rows = rows_of(prepare_triplets(split, config, "small", tmp_path / "m"))
    from twotower.data.scoring import TeacherScores

    qids = sorted({r["qid"] for r in rows})
    windows = TeacherScores.load(str(tiny_bert), split, qids).mine(qids, 0, 30)
    checked = 0
    for row in rows:
        for neg, score in zip(row["neg_pids"], row["teacher"][1:]):
            if neg in windows[row["qid"]]:  # mined, not a random top-up: must score below the positive
                assert score < row["teacher"][0]
                checked += 1
    assert checked > 0


def test_a_teacher_cache_is_resumed_after_a_kill_and_never_reused_for_another_corpus(tiny_bert, monkeypatch):
    teacher = load_teacher(str(tiny_bert))
    texts = [f"passage number {i} about eggs and rivers" for i in range(300)]
    ids = [str(i) for i in range(300)]
    import twotower.data.teacher as module

    monkeypatch.setattr(module, "CACHE_PART", 64)
    calls = []
    encode = teacher._encode

    def killed_after_two_parts(batch, side):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill mid-way
        return encode(batch, side)

    teacher._encode = killed_after_two_parts
    with pytest.raises(KeyboardInterrupt):
        teacher.vectors(ids, lambda p: [texts[int(i)] for i in p], "document", progress=False)
    teacher._encode = lambda batch, side: (calls.append(len(batch)), encode(batch, side))[1]
    resumed = teacher.vectors(ids, lambda p: [texts[int(i)] for i in p], "document", progress=False)
    assert sum(calls[3:]) == 300 - 128  # the two finished parts were not encoded again
    assert np.allclose(resumed, encode(texts, "document"), atol=1e-5)
    calls.clear()
    other = teacher.vectors(ids, lambda p: [texts[int(i)] + " (edited)" for i in p], "document", progress=False)
    assert sum(calls) == 300 and not np.allclose(other, resumed)


def test_a_teacher_that_is_not_a_model_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher not found: .*nowhere"):
        load_teacher(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="not a model folder"):
        load_teacher(str(tmp_path))


def test_non_finite_teacher_scores_are_refused_with_the_row(split, tiny_bert, tmp_path, monkeypatch):
    from twotower.data.scoring import TeacherScores

    monkeypatch.setattr(TeacherScores, "of", lambda self, qid, pids: [float("nan")] * len(pids))
    with pytest.raises(ValueError, match="the teacher scored query .* not finite"):
        prepare_triplets(split, PrepareConfig(teacher=str(tiny_bert), subsample=0.1), "small", tmp_path / "n")


def test_a_tiny_distillation_run(small_msmarco, tiny_bert, tmp_path):
    result = api.train(
        [
            "model=mean",
            "tokenizer=glove",
            "loss=combined",
            "negatives=bm25+dense",
            f"data.prepare.teacher={tiny_bert}",
            "data.prepare.num_negatives=4",
            "data.prepare.teacher_margin=0.0",
            "data.batch_size=32",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=4",
            "logger=csv",
        ],
        config={"data": {"dir": str(small_msmarco)}},
        run_dir=tmp_path,
    )
    epoch = result.metrics["epochs"][1]
    assert epoch["train_loss"] > 0 and 0 <= result.best["mrr@10"] <= 1


def test_ance_refresh_re_mines_with_the_model_being_trained(small_msmarco, tiny_bert, tmp_path):
    common = [
        "model=mean",
        "tokenizer=glove",
        "loss=kl",
        "negatives=dense",
        f"data.prepare.teacher={tiny_bert}",
        "data.prepare.num_negatives=2",
        "data.batch_size=32",
        "trainer.limit_train_batches=2",
        "logger=csv",
        "data.refresh_every=1",
        "data.prepare.subsample=0.3",
        "eval_max_queries=10",
    ]
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs=1"):
        api.train(
            common + ["trainer.max_epochs=2"], config={"data": {"dir": str(small_msmarco)}}, run_dir=tmp_path / "a"
        )
    api.train(
        common + ["trainer.max_epochs=2", "trainer.reload_dataloaders_every_n_epochs=1"],
        config={"data": {"dir": str(small_msmarco)}},
        run_dir=tmp_path / "b",
    )
    rows = rows_of(tmp_path / "b" / "negatives" / "epoch001")
    split = passage_split("train", small_msmarco / "msmarco-passage")
    assert rows and all(not set(r["neg_pids"]) & set(split.qrels[r["qid"]]) and len(r["teacher"]) == 3 for r in rows)


def test_the_student_regresses_onto_the_teachers_vectors(small_msmarco, tiny_bert, tmp_path):
    result = api.train(
        [
            "model=mean",
            "tokenizer=glove",
            "loss=distill",
            "negatives=bm25",
            f"data.prepare.teacher={tiny_bert}",
            "data.prepare.num_negatives=2",
            "data.teacher_vectors=true",
            "model.tower.output_dim=32",
            "data.batch_size=32",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "logger=csv",
        ],
        config={"data": {"dir": str(small_msmarco)}},
        run_dir=tmp_path,
    )
    assert result.metrics["epochs"][1]["train_loss"] > 0
