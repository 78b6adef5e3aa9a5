"""The deep-memory vector store: add, search, persistence, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest

from twotower.deep_memory import EmbeddingDimensionError, HashingEmbedding, VectorStore

TEXTS = [
    "the cat sat on the mat",
    "dogs chase cats in the park",
    "stock markets fell sharply on monday",
    "the central bank raised interest rates",
]


@pytest.fixture
def db(tmp_path):
    store = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=64))
    store.add(
        TEXTS,
        ids=["cat", "dog", "stocks", "bank"],
        metadata=[{"topic": "pets"}, {"topic": "pets"}, {"topic": "money"}, None],
    )
    return store


def test_search_returns_ids_texts_scores_metadata_best_first(db):
    result = db.search(embedding_data=["interest rates bank"], k=2)
    assert result["id"][0] == "bank"
    assert result["text"][0] == TEXTS[3]
    assert result["metadata"][0] == {}
    assert len(result["id"]) == len(result["score"]) == 2
    assert result["score"][0] >= result["score"][1]
    assert -1.0 <= result["score"][1] <= result["score"][0] <= 1.0 + 1e-6


def test_one_query_gives_a_dict_several_give_a_list(db):
    assert isinstance(db.search(embedding_data="cat mat", k=1), dict)
    several = db.search(embedding_data=["cat mat", "stock markets"], k=1)
    assert [r["id"][0] for r in several] == ["cat", "stocks"]
    assert several[1]["metadata"] == [{"topic": "money"}]


def test_documents_persist_and_a_second_object_sees_additions(db, tmp_path):
    other = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=64))
    assert other.ids == ["cat", "dog", "stocks", "bank"]
    other.add(["a recipe for lemon cake"], ids=["cake"])
    assert db.search(embedding_data=["lemon cake recipe"], k=1)["id"] == ["cake"]
    assert len(db) == 5


def test_stored_vectors_are_the_cached_unit_rows(db):
    vectors = db.embeddings
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError):
        vectors[0, 0] = 1.0  # read-only: training never recomputes or edits document vectors


def test_precomputed_embeddings_are_used_as_given(tmp_path):
    store = VectorStore(tmp_path / "s", embedding_function=lambda texts: pytest.fail("must not embed documents"))
    store.add(["x", "y"], ids=["x", "y"], embeddings=np.array([[3.0, 0.0], [0.0, 2.0]]))
    assert store.search(embedding=np.array([0.0, 1.0]), k=1)["id"] == ["y"]


def test_bad_adds_and_searches_raise_clearly(db, tmp_path):
    with pytest.raises(ValueError, match="already in the store"):
        db.add(["again"], ids=["cat"])
    with pytest.raises(ValueError, match="unique"):
        db.add(["a", "b"], ids=["x", "x"])
    with pytest.raises(ValueError, match="2 texts but 1 ids"):
        db.add(["a", "b"], ids=["x"])
    wrong = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=32))
    with pytest.raises(EmbeddingDimensionError, match="32-d vectors but this store holds 64-d"):
        wrong.search(embedding_data=["cat"])
    with pytest.raises(EmbeddingDimensionError, match="returned shape"):
        VectorStore(tmp_path / "odd", embedding_function=lambda texts: np.zeros(3)).add(["a", "b"])
    with pytest.raises(ValueError, match="holds no documents"):
        VectorStore(tmp_path / "empty", embedding_function=HashingEmbedding()).search(embedding_data=["x"])


def test_a_twotower_checkpoint_is_an_embedding_function(tmp_path):
    from pathlib import Path

    from twotower.deep_memory import VectorStore
    from twotower.deep_memory.embeddings import TwoTowerEmbedding

    ckpt = Path(__file__).resolve().parents[2] / "data" / "twotower1_mean.pt"
    db = VectorStore(tmp_path / "store", embedding_function=TwoTowerEmbedding(ckpt))
    db.add(["boil water then add the egg", "a bank loan", "the egg"], ids=["a", "b", "c"])
    assert db.search(embedding_data="bank loan", k=1)["id"] == ["b"]
