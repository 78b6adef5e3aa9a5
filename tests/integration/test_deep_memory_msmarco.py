"""Deep memory on the shared MS MARCO subset with GloVe: the issue's headline target, end to end (slow)."""

from __future__ import annotations

import warnings

import pytest

from twotower.deep_memory import GloveMeanEmbedding, VectorStore
from twotower.deep_memory.embeddings import cached_collection_embeddings
from twotower.io.paths import data_dir

ROOT = data_dir() / "msmarco-passage"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ROOT / "collection.tsv").exists(), reason=f"MS MARCO subset not found under {ROOT}"),
]


def test_glove_recall_at_10_rises_by_22_percent_on_held_out_queries(tmp_path):
    from twotower.data.msmarco import read_collection, read_qrels, read_queries

    docs = read_collection(ROOT / "collection.tsv")
    queries, qrels = read_queries(ROOT / "queries.train.tsv"), read_qrels(ROOT / "qrels.train.tsv")
    glove = GloveMeanEmbedding()
    db = VectorStore(tmp_path / "store", embedding_function=glove)
    db.add(
        list(docs.values()),
        ids=list(docs),
        embeddings=cached_collection_embeddings(glove, list(docs.values()), ROOT / "collection.tsv", "glove"),
    )
    qids = list(queries)
    relevance = lambda ids: [[(p, 1.0) for p in qrels[q]] for q in ids]  # noqa: E731
    job_id = db.deep_memory.train([queries[q] for q in qids[:10_000]], relevance(qids[:10_000]))
    job = db.deep_memory.wait(job_id, timeout=600)
    assert job["status"] == "completed" and job["accepted"], job.get("reason")
    held_out = qids[10_000:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = db.deep_memory.evaluate([queries[q] for q in held_out], relevance(held_out), top_k=[1, 10])
    before, after = result["without model"], result["with model"]
    assert before["recall@10"] == pytest.approx(0.370, abs=0.002)  # the GloVe base
    assert after["recall@10"] >= 1.22 * before["recall@10"]
    assert after["mrr@10"] > before["mrr@10"] and after["recall@1"] > before["recall@1"]
