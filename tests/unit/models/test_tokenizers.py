"""Word and WordPiece tokenizers: vocabularies, padding, and the embeddings they start from."""

import numpy as np

from twotower.models.tokenizers import WordPieceTokenizer, WordTokenizer, glove_vectors


def test_word_vocabulary_respects_min_freq_and_reserves_pad_unk():
    tok = WordTokenizer.build(["the cat sat", "the cat ran", "a dog"], min_freq=2, embedding_dim=8)
    assert tok.word_to_index == {"<pad>": 0, "<unk>": 1, "the": 2, "cat": 3}
    ids = tok.encode(["The cat barked", "cat"], max_length=5)
    assert ids.tolist() == [[2, 3, 1], [3, 0, 0]]
    assert tok.embedding_matrix.shape == (4, 8) and not tok.embedding_matrix[0].any()
    assert tok.idf[tok.word_to_index["cat"]] < tok.idf[1]  # rarer words weigh more


def test_glove_initialisation_copies_the_real_vectors():
    tok = WordTokenizer.build(["king queen zzqxv", "king queen zzqxv"], min_freq=1, glove=True)
    words, vectors = glove_vectors()
    assert np.allclose(tok.embedding_matrix[tok.word_to_index["king"]], vectors[words.index("king")])
    assert tok.embedding_matrix.shape[1] == 50


def test_wordpiece_uses_minilm_vocabulary_and_embeddings():
    tok = WordPieceTokenizer.build(["cooking an egg", "boiling water"])
    assert tok.embedding_matrix.shape == (30522, 384)
    ids = tok.encode(["cooking an egg", "egg"], max_length=2)
    assert ids.shape == (2, 2) and ids[1, 1] == 0
    assert tok.tokenize("unaffordable")[0] == "una"
