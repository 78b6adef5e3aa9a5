"""The one BM25 home: a chunked build identical to bm25s' in-memory index, cached and crash-safe, threaded
search, and query shards that merge to the single-process result."""

import bm25s
import numpy as np
import pytest

from twotower.data.corpus import DONE, Corpus
from twotower.data.dict_corpus import DictCorpus
from twotower.data.msmarco import passage_split
from twotower.evaluation.metrics import retrieval_metrics
from twotower.retrieval import bm25_write as bm25_build
from twotower.retrieval.bm25 import BM25Index, bm25_index, merge_shards, mine, mine_shard, shard_bounds

TINY = {
    "p1": "Place the eggs in boiling water and cook them for seven minutes.",
    "p2": "The stock market fell sharply as investors sold technology shares.",
    "p3": "Paris is the capital and most populous city of France.",
    "p4": "A golden retriever is a friendly, medium-sized dog breed.",
    "p5": "The the the of and",  # stop-words only: an empty document
}


@pytest.fixture(scope="module")
def dev():
    from twotower.io.paths import data_dir

    return passage_split("dev", data_dir() / "msmarco-passage")


def test_the_chunked_build_equals_bm25s_in_memory_index(dev, tmp_path):
    pids = sorted(dev.collection)
    corpus = DictCorpus({p: dev.collection[p] for p in pids})
    index = BM25Index.build(corpus, tmp_path / "bm25", chunk_size=3_000)  # 9 chunks

    reference = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    reference.index(
        bm25s.tokenize([dev.collection[p] for p in pids], stopwords="en", show_progress=False), show_progress=False
    )
    ours = index.retriever.scores
    assert np.array_equal(ours["data"], reference.scores["data"])  # bit for bit
    assert np.array_equal(ours["indices"], reference.scores["indices"])
    assert np.array_equal(ours["indptr"][:-1], reference.scores["indptr"])  # plus bm25s' empty-token column
    assert index.retriever.vocab_dict == reference.vocab_dict
    assert not list((tmp_path / "bm25").glob("*.tmp"))  # scratch files gone


def test_dev_set_mrr_matches_the_readme(dev, tmp_path):
    qids = [q for q in dev.queries if q in dev.qrels]
    index = bm25_index(DictCorpus({p: dev.collection[p] for p in sorted(dev.collection)}))
    found, scores = index.search([dev.queries[q] for q in qids], 100, n_threads=2)

    metrics = retrieval_metrics(dict(zip(qids, found)), {q: dev.qrels[q] for q in qids})
    # README: 0.321 (bm25s' numpy top-k, ties in arbitrary order); ties by pid here: 0.3218.
    assert metrics["mrr@10"] == pytest.approx(0.3218, abs=1e-4)
    assert all(s == sorted(s, reverse=True) for s in scores)


def test_search_returns_the_exact_top_k(dev, tmp_path):
    from twotower.retrieval.text import bm25_tokenize as tokenize

    index = BM25Index.build(DictCorpus(dev.collection), tmp_path / "bm25")
    queries = [dev.queries[q] for q in list(dev.queries)[:40]]
    rows, scores = index.search_rows(queries, k=30, n_threads=2)
    for query, got_rows, got_scores in zip(queries, rows, scores):
        ids = tokenize([query], index.retriever.vocab_dict, index._stop, grow=False)[0]
        full = index.retriever.get_scores(ids)  # bm25s' dense scoring of every passage
        hits = np.flatnonzero(full > 0)
        best = hits[np.lexsort((hits, -full[hits]))][:30]
        np.testing.assert_allclose(got_scores[: len(best)], full[best], rtol=1e-6)
        clear = full[best] > full[best][-1]  # above the cut, the same passages in the same order
        assert got_rows[: len(best)][clear].tolist() == best[clear].tolist()
        assert (got_rows[len(best) :] == -1).all() and (np.diff(got_scores[: len(best)]) <= 0).all()


def test_index_is_cached_per_corpus_and_loads_with_bm25s_mmap(tmp_path, caplog):
    corpus = DictCorpus(TINY)
    first = bm25_index(corpus)
    assert (first.path / DONE).exists() and first.path.parent.name == "bm25"
    with caplog.at_level("INFO", logger="twotower.retrieval.bm25"):
        again = bm25_index(DictCorpus(TINY))
    assert again.path == first.path and "reusing the BM25 index" in caplog.text
    assert bm25_index(DictCorpus({**TINY, "p6": "another"})).path != first.path

    loaded = bm25s.BM25.load(first.path, mmap=True)
    assert isinstance(loaded.scores["data"], np.memmap) and loaded.scores["num_docs"] == 5
    with pytest.raises(ValueError, match="indexes corpus"):
        BM25Index(first.path, DictCorpus({"x": "other"}))


def test_a_killed_build_never_looks_complete(tmp_path, monkeypatch):
    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bm25_build, "_score_csc", die)
    with pytest.raises(KeyboardInterrupt):
        BM25Index.build(DictCorpus(TINY), tmp_path / "bm25")
    assert not (tmp_path / "bm25").exists() and not list(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError, match="no finished BM25 index"):
        BM25Index(tmp_path / "bm25", DictCorpus(TINY))


def test_search_returns_pids_best_first_and_nothing_for_unknown_words(tmp_path):
    index = BM25Index.build(DictCorpus(TINY), tmp_path / "bm25")
    found, scores = index.search(["cook eggs in boiling water", "capital of france", "zzz qqq", "the"], k=3)

    assert found[0][0] == "p1" and found[1] == ["p3"]  # only passages sharing a word are hits
    assert found[2] == [] and found[3] == [] and scores[2] == []
    rows, raw = index.search_rows(["zzz"], k=3)
    assert rows.tolist() == [[-1, -1, -1]] and raw.tolist() == [[0, 0, 0]]


def test_threads_and_shards_give_the_single_process_pools(dev, tmp_path):
    corpus = DictCorpus(dev.collection)
    index = BM25Index.build(corpus, tmp_path / "bm25")
    queries = {q: dev.queries[q] for q in list(dev.queries)[:200]}

    whole = mine(index, queries, k=20, n_threads=1, batch_size=64)
    assert mine(index, queries, k=20, n_threads=2) == whole
    for i in range(3):
        mine_shard(index, queries, 20, (i, 3), tmp_path / "shards", n_threads=1)
    assert merge_shards(tmp_path / "shards") == whole
    assert list(merge_shards(tmp_path / "shards")) == list(queries)  # query order kept

    (tmp_path / "shards" / "bm25-00001-of-00003.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"shards \[1\] of 3 are missing"):
        merge_shards(tmp_path / "shards")


def test_shard_bounds_cover_every_query_once():
    bounds = [shard_bounds(10, (i, 3)) for i in range(3)]
    assert bounds == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError, match=r"shard must be \(i, n\)"):
        shard_bounds(10, (3, 3))


def test_an_on_disk_corpus_is_indexed_the_same(msmarco_dir, tmp_path):
    path = msmarco_dir / "msmarco-passage" / "collection.tsv"
    on_disk = BM25Index.build(Corpus.build(path, tmp_path / "corpus"), tmp_path / "a", chunk_size=10_000)
    from twotower.data.msmarco import read_collection

    in_memory = BM25Index.build(DictCorpus(read_collection(path)), tmp_path / "b")
    assert np.array_equal(on_disk.retriever.scores["data"], in_memory.retriever.scores["data"])
    assert on_disk.search(["what is a golden retriever"], 5) == in_memory.search(["what is a golden retriever"], 5)
