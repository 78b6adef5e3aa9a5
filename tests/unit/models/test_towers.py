"""Towers own their text: tokenize -> features -> unit vectors, padding ignored, encoders shared or separate."""

from functools import partial

import pytest
import torch

from twotower.models.build import build_two_tower
from twotower.models.recurrent import GRUTower, LSTMTower, RNNTower
from twotower.models.static import MeanTower, make_embedding
from twotower.models.tokenizers import WordTokenizer

TEXTS = ["cooking an egg takes minutes", "boil water then add the egg", "the river bank", "a bank loan"]


def tokenizer(dim: int = 16) -> WordTokenizer:
    return WordTokenizer.build(TEXTS * 2, min_freq=1, embedding_dim=dim, seed=0)


@pytest.mark.parametrize("tower", [MeanTower, GRUTower, LSTMTower, RNNTower])
def test_output_is_unit_length_and_ignores_padding(tower):
    torch.manual_seed(0)
    model = build_two_tower(partial(tower, output_dim=8), tokenizer()).eval()
    features = model.tokenize_queries(["cooking an egg", "the bank"])
    out = model.encode_queries(features)
    assert out.shape == (2, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)
    more_padding = {"ids": torch.cat([features["ids"], torch.zeros(2, 4, dtype=torch.long)], dim=1)}
    assert torch.allclose(model.encode_queries(more_padding), out, atol=1e-5)


def test_each_side_truncates_at_its_own_length():
    model = build_two_tower(partial(MeanTower, output_dim=4), tokenizer(), query_max_length=2, doc_max_length=5)
    text = [TEXTS[0]]
    assert model.tokenize_queries(text)["ids"].shape == (1, 2)
    assert model.tokenize_documents(text)["ids"].shape == (1, 5)


def test_shared_and_separate_encoders():
    make = partial(GRUTower, hidden_size=8, output_dim=8)
    shared = build_two_tower(make, tokenizer(), shared=True)
    separate = build_two_tower(make, tokenizer(), shared=False)
    assert shared.shared and shared.query_tower is shared.document_tower
    assert not separate.shared
    # Separate encoders still read one embedding table, so word vectors are learned once (and optimised once).
    assert separate.query_tower.embedding is separate.document_tower.embedding
    params = [p for g in separate.parameter_groups(1e-3) for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == len(list(separate.parameters()))
    features = separate.tokenize_queries(["the river bank"])
    assert not torch.allclose(separate.encode_queries(features), separate.encode_documents(features))


def test_mean_tower_token_weights_start_from_idf():
    tok = tokenizer()
    idf = torch.linspace(0.5, 5, tok.vocab_size)
    tower = MeanTower(tok, make_embedding(torch.as_tensor(tok.embedding_matrix)), idf=idf)
    assert torch.allclose(torch.nn.functional.softplus(tower.weight_logit), idf, atol=1e-4)


def test_a_tokenizer_and_a_table_of_another_vocabulary_are_refused():
    with pytest.raises(ValueError, match="same vocabulary"):
        MeanTower(tokenizer(), make_embedding(torch.zeros(7, 16)))


def test_unknown_tokens_are_counted_for_search_warnings():
    model = build_two_tower(partial(MeanTower, output_dim=4), tokenizer())
    assert model.query_tower.token_counts("egg zzqxv blorft") == (3, 2)


def test_frozen_embeddings_get_no_gradient():
    model = build_two_tower(partial(MeanTower, output_dim=4), tokenizer(), freeze_embeddings=True)
    model.encode_queries(model.tokenize_queries(["egg"])).sum().backward()
    assert model.query_tower.embedding.weight.grad is None


@pytest.mark.parametrize("tower, cell", [(GRUTower, torch.nn.GRU), (LSTMTower, torch.nn.LSTM)])
def test_recurrent_tower_equals_a_packed_bidirectional_rnn(tower, cell):
    torch.manual_seed(0)
    tok = tokenizer()
    model = tower(
        tok,
        make_embedding(torch.as_tensor(tok.embedding_matrix)),
        hidden_size=6,
        num_layers=2,
        bidirectional=True,
        output_dim=4,
    ).eval()
    reference = cell(16, 6, num_layers=2, bidirectional=True, batch_first=True)
    for layer, (forward, backward) in enumerate(model.layers):
        for name, value in forward.named_parameters():
            getattr(reference, name.replace("l0", f"l{layer}")).data.copy_(value)
        for name, value in backward.named_parameters():
            getattr(reference, name.replace("l0", f"l{layer}") + "_reverse").data.copy_(value)
    ids = torch.tensor([[5, 6, 7, 8, 0], [9, 3, 0, 0, 0], [1, 2, 3, 4, 5]])
    lengths = (ids != 0).sum(1)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        model.embedding(ids), lengths, batch_first=True, enforce_sorted=False
    )
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=5)
    expected = torch.nn.functional.normalize(model.proj(out.sum(1) / lengths.unsqueeze(-1)), dim=-1)
    assert torch.allclose(model({"ids": ids}), expected, atol=1e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_mean_tower_is_the_weighted_mean_of_its_token_vectors_in_both_code_paths(dropout):
    """v = head(Σ w_t e_t / Σ w_t): encoding sums with `embedding_bag` (no batch x tokens x dim tensor), training
    with dropout gathers every token's vector; both must give this formula, and the same gradients."""
    torch.manual_seed(0)
    tokenizer = WordTokenizer.build(["the cat sat", "a dog ran far away", "cats and dogs"], min_freq=1, embedding_dim=8)
    tower = MeanTower(tokenizer, make_embedding(torch.randn(tokenizer.vocab_size, 8)), output_dim=5, dropout=dropout)
    with torch.no_grad():
        tower.weight_logit.normal_()
    ids = tokenizer.encode(["the cat sat", "a dog ran far away", "dogs"], max_length=5)

    def reference() -> torch.Tensor:
        w = torch.nn.functional.softplus(tower.weight_logit[ids]) * (ids != 0)
        mean = (tower.embedding(ids) * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True)
        return torch.nn.functional.normalize(tower.head(mean), dim=-1)

    tower.eval()  # dropout off: the embedding_bag path
    assert torch.allclose(tower({"ids": ids}), reference(), atol=1e-6)
    tower.train()
    if dropout == 0.0:  # training without dropout takes the embedding_bag path too: same gradients
        tower({"ids": ids}).sum().backward()
        fast = [p.grad.clone() for p in tower.parameters()]
        tower.zero_grad()
        reference().sum().backward()
        assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(fast, tower.parameters()))
    else:  # with dropout, each token vector is dropped on its own: outputs vary, rows stay unit length
        out = tower({"ids": ids})
        assert not torch.allclose(out, reference()) and torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-6)
