"""Towers map padded ids to unit vectors, ignore padding, and can share or split the encoders."""

import pytest
import torch

from twotower.models.towers import GRUTower, LSTMTower, MeanTower, RNNTower, build_two_tower

VOCAB, DIM = 50, 16


def embedding_matrix():
    torch.manual_seed(0)
    matrix = torch.randn(VOCAB, DIM)
    matrix[0] = 0
    return matrix


@pytest.mark.parametrize("tower", [MeanTower, GRUTower, LSTMTower, RNNTower])
def test_output_is_unit_length_and_ignores_padding(tower):
    from functools import partial

    model = build_two_tower(partial(tower, output_dim=8), embedding_matrix()).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0], [9, 3, 0, 0, 0]])
    out = model.encode_queries(ids)
    assert out.shape == (2, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)
    more_padding = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    assert torch.allclose(model.encode_queries(more_padding), out, atol=1e-5)


def test_shared_and_separate_encoders():
    from functools import partial

    make = partial(GRUTower, hidden_size=8, output_dim=8)
    shared = build_two_tower(make, embedding_matrix(), shared=True)
    separate = build_two_tower(make, embedding_matrix(), shared=False)
    assert shared.shared and shared.query_tower is shared.document_tower
    assert not separate.shared
    # Separate encoders still read one embedding table, so word vectors are learned once.
    assert separate.query_tower.embedding is separate.document_tower.embedding
    ids = torch.tensor([[1, 2, 3]])
    assert not torch.allclose(separate.encode_queries(ids), separate.encode_documents(ids))


def test_mean_tower_token_weights_start_from_idf():
    idf = torch.linspace(0.5, 5, VOCAB)
    tower = MeanTower(torch.nn.Embedding.from_pretrained(embedding_matrix(), padding_idx=0), idf=idf)
    assert torch.allclose(torch.nn.functional.softplus(tower.weight_logit), idf, atol=1e-4)


def test_frozen_embeddings_get_no_gradient():
    from functools import partial

    model = build_two_tower(partial(MeanTower, output_dim=4), embedding_matrix(), freeze_embeddings=True)
    model.encode_queries(torch.tensor([[1, 2]])).sum().backward()
    assert model.query_tower.embedding.weight.grad is None


@pytest.mark.parametrize("tower, cell", [(GRUTower, torch.nn.GRU), (LSTMTower, torch.nn.LSTM)])
def test_recurrent_tower_equals_a_packed_bidirectional_rnn(tower, cell):
    torch.manual_seed(0)
    model = tower(torch.nn.Embedding.from_pretrained(embedding_matrix(), padding_idx=0), hidden_size=6,
                  num_layers=2, bidirectional=True, output_dim=4).eval()
    reference = cell(DIM, 6, num_layers=2, bidirectional=True, batch_first=True)
    for layer, (forward, backward) in enumerate(model.layers):
        for name, value in forward.named_parameters():
            getattr(reference, name.replace("l0", f"l{layer}")).data.copy_(value)
        for name, value in backward.named_parameters():
            getattr(reference, name.replace("l0", f"l{layer}") + "_reverse").data.copy_(value)
    ids = torch.tensor([[5, 6, 7, 8, 0], [9, 3, 0, 0, 0], [1, 2, 3, 4, 5]])
    lengths = (ids != 0).sum(1)
    packed = torch.nn.utils.rnn.pack_padded_sequence(model.embedding(ids), lengths, batch_first=True,
                                                     enforce_sorted=False)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=5)
    expected = torch.nn.functional.normalize(model.proj(out.sum(1) / lengths.unsqueeze(-1)), dim=-1)
    assert torch.allclose(model(ids), expected, atol=1e-5)
