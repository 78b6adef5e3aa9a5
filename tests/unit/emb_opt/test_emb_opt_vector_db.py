"""Vector databases for emb_opt: exact results, ids and stored fields, bad input."""

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from twotower.emb_opt import FaissVectorDB, NumpyVectorDB, sample_queries


@pytest.fixture
def vectors():
    return np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)


def brute_force(vectors, queries, k, metric):
    if metric == "l2":
        key = ((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    else:
        key = -(queries @ vectors.T)
    return np.argsort(key, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("make", [NumpyVectorDB, FaissVectorDB.from_vectors], ids=["numpy", "faiss"])
def test_query_returns_the_exact_neighbours_with_their_vectors(vectors, metric, make):
    db = make(vectors, metric=metric)
    queries = vectors[:5] + 0.01
    found = db.query(queries, k=7)

    assert found.ids.shape == (5, 7) and found.vectors.shape == (5, 7, 8)
    np.testing.assert_array_equal(found.ids, brute_force(vectors, queries, 7, metric))
    np.testing.assert_allclose(found.vectors, vectors[found.ids])
    if metric == "l2":
        expected = ((queries[:, None, :] - vectors[found.ids]) ** 2).sum(-1)
    else:
        expected = np.einsum("qd,qkd->qk", queries, vectors[found.ids])
    np.testing.assert_allclose(found.distances, expected, rtol=1e-4, atol=1e-4)
    assert found.valid.all()


@pytest.mark.parametrize("fields", ["pandas", "arrow", "dict"])
def test_item_ids_and_stored_fields_follow_the_row(vectors, fields):
    ids = np.array([f"doc{i}" for i in range(len(vectors))])
    table = {"title": [f"title {i}" for i in range(len(vectors))], "year": np.arange(len(vectors)) + 1900}
    stored = {"pandas": pd.DataFrame(table), "arrow": pa.table(table), "dict": table}[fields]
    db = FaissVectorDB.from_vectors(vectors, ids=ids, fields=stored)

    found = db.query(vectors[[42, 7]], k=3)

    assert found.ids[0, 0] == "doc42" and found.ids[1, 0] == "doc7"
    rows = np.array([[int(i[3:]) for i in row] for row in found.ids])
    np.testing.assert_array_equal(found.fields["year"], rows + 1900)
    assert found.fields["title"][0, 0] == "title 42"


def test_k_larger_than_the_index_marks_missing_slots_invalid(vectors):
    for db in (NumpyVectorDB(vectors[:4]), FaissVectorDB.from_vectors(vectors[:4])):
        found = db.query(vectors[:2], k=6)
        assert found.valid.sum(axis=1).tolist() == [4, 4]
        assert sorted(found.ids[0][found.valid[0]].tolist()) == [0, 1, 2, 3]


def test_ivf_index_gets_a_direct_map_so_results_carry_vectors(vectors):
    quantizer = faiss.IndexFlatL2(8)
    index = faiss.IndexIVFFlat(quantizer, 8, 4)
    index.train(vectors)
    index.add(vectors)
    db = FaissVectorDB(index, search_params=faiss.SearchParametersIVF(nprobe=4))

    found = db.query(vectors[:3], k=5)

    np.testing.assert_allclose(found.vectors, vectors[found.ids])
    assert found.ids[:, 0].tolist() == [0, 1, 2]


def test_wrong_query_shapes_get_errors_naming_the_shape(vectors):
    db = NumpyVectorDB(vectors)
    with pytest.raises(ValueError, match="dimension 5 but the vector database holds 8-d"):
        db.query(np.zeros((2, 5)), k=3)
    with pytest.raises(ValueError, match=r"2-D array.*shape \(8,\).*vectors\[None\]"):
        db.query(np.zeros(8), k=3)
    with pytest.raises(ValueError, match="NaN"):
        db.query(np.full((1, 8), np.nan), k=3)


def test_mismatched_ids_or_fields_are_rejected(vectors):
    with pytest.raises(ValueError, match=r"ids must have shape \(500,\)"):
        NumpyVectorDB(vectors, ids=np.arange(3))
    with pytest.raises(ValueError, match="column 'a' has 2 rows"):
        FaissVectorDB.from_vectors(vectors, fields={"a": [1, 2]})


def test_an_empty_index_answers_with_no_results():
    for db in (NumpyVectorDB(np.zeros((0, 4))), FaissVectorDB.from_vectors(np.zeros((0, 4)))):
        found = db.query(np.zeros((3, 4)), k=5)
        assert len(db) == 0 and found.valid.shape[0] == 3 and not found.valid.any()
        with pytest.raises(ValueError, match="empty"):
            sample_queries(db, 2)


def test_sample_queries_returns_distinct_stored_vectors(vectors):
    starts = sample_queries(NumpyVectorDB(vectors), 50, seed=3)
    assert starts.shape == (50, 8)
    assert len({row.tobytes() for row in starts}) == 50
    assert all((np.abs(vectors - row).sum(1) == 0).any() for row in starts[:5])
