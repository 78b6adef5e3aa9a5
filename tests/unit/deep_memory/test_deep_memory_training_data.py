"""Generating training pairs for a store that has documents but no queries yet."""

from __future__ import annotations

import pytest

from twotower.deep_memory import HashingEmbedding, VectorStore, create_training_data
from twotower.deep_memory.training_data import KeywordQueryGenerator

TEXTS = {
    "lyme": "Lyme disease is spread by ticks. Early symptoms include fever, headache and a skin rash called erythema migrans.",
    "volcano": "A stratovolcano is built from layers of hardened lava and ash. Mount Fuji is a famous example.",
    "sourdough": "Sourdough bread rises through wild yeast and lactobacilli in a fermented starter.",
}


@pytest.fixture
def db(tmp_path):
    store = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding())
    store.add(list(TEXTS.values()), ids=list(TEXTS))
    return store


def test_default_generator_makes_keyword_queries_from_each_documents_own_rare_words(db):
    queries, relevance = create_training_data(db, n_samples=None)
    assert len(queries) == len(relevance) == 3
    for query, pairs in zip(queries, relevance):
        ((doc_id, score),) = pairs
        assert score == 1.0
        words = query.split()
        assert 1 <= len(words) <= 6
        assert all(w in TEXTS[doc_id].lower() for w in words)  # it cannot invent words
        assert not {"the", "is", "and", "a"} & set(words)


def test_rare_words_win_over_common_ones():
    generator = KeywordQueryGenerator(["the cat sat", "the dog sat", "the axolotl sat"], length=(1, 1))
    assert generator("the axolotl sat") == "axolotl"


def test_any_callable_can_generate_questions_for_example_an_llm(db):
    def ask(text: str) -> list[str]:
        subject = text.split()[0]
        return [f"what is {subject}?", f"tell me about {subject}"]

    queries, relevance = create_training_data(db, n_samples=2, question_generator=ask, seed=1)
    assert len(queries) == 4
    assert queries[0].startswith("what is")
    assert relevance[0] == relevance[1]


def test_an_empty_store_has_nothing_to_generate_from(tmp_path):
    with pytest.raises(ValueError, match="no documents"):
        create_training_data(VectorStore(tmp_path / "empty", embedding_function=HashingEmbedding()))
