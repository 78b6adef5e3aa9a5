"""Static towers: a weighted bag of token vectors, y = normalise(head(Σ_t w_t e_t / Σ_t w_t)).

No context is computed, so a passage costs a few table look-ups: the fastest tower to encode a corpus with.
The token table starts from GloVe, from MiniLM's input embeddings, or from a Model2Vec distillation of MiniLM
(see `models.tokenizers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from twotower.models.tower import ExportError, Tower


def make_embedding(matrix: torch.Tensor, freeze: bool = False) -> nn.Embedding:
    """An embedding table starting from `matrix`; row 0 is padding."""
    return nn.Embedding.from_pretrained(torch.as_tensor(matrix).float(), freeze=freeze, padding_idx=0)


def mlp(in_dim: int, hidden_dim: int, output_dim: int, dropout: float) -> nn.Module:
    if hidden_dim <= 0:
        return nn.Linear(in_dim, output_dim)
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, output_dim)
    )


class VocabularyTower(Tower):
    """A tower over a tokenizer made from (or for) the training text and the embedding table it starts from.

    The tokenizer is a plain attribute, not a submodule: it is saved as the checkpoint's vocabulary fields, and
    separate query and document towers can share it and the table."""

    uses_vocabulary = True

    def __init__(self, tokenizer, embedding: nn.Embedding) -> None:
        super().__init__()
        if tokenizer.vocab_size != embedding.num_embeddings:
            raise ValueError(
                f"tokenizer has {tokenizer.vocab_size} entries but the embedding table "
                f"{embedding.num_embeddings} rows: they must come from the same vocabulary"
            )
        self.tokenizer = tokenizer
        self.embedding = embedding

    def tokenize(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        return {"ids": self.tokenizer.encode(list(texts), max_length)}

    def token_counts(self, text: str) -> tuple[int, int]:
        ids = self.tokenizer.token_ids(text)
        return len(ids), sum(1 for i in ids if i == self.tokenizer.unknown_id)


class MeanTower(VocabularyTower):
    """Weighted bag of embeddings: v = head(Σ_t w_t e_t / Σ_t w_t), y = v / ‖v‖.

    `token_weights` gives each vocabulary entry a learned scalar w (softplus of a logit) started from IDF
    when known: without it a bag of words is dominated by "the", "of" and "is". `head` is linear
    (`hidden_size=0`) or an MLP.
    """

    def __init__(
        self,
        tokenizer,
        embedding: nn.Embedding,
        output_dim: int = 128,
        hidden_size: int = 0,
        dropout: float = 0.0,
        token_weights: bool = True,
        idf: torch.Tensor | None = None,
    ) -> None:
        super().__init__(tokenizer, embedding)
        self.token_weights = token_weights
        if token_weights:
            start = (
                torch.as_tensor(idf).float().clamp_min(1e-3)
                if idf is not None
                else torch.ones(embedding.num_embeddings)
            )
            # softplus^-1 so that softplus(logit) starts at exactly `start`.
            self.weight_logit = nn.Parameter(start + torch.log(-torch.expm1(-start)))
        self.dropout = nn.Dropout(dropout)
        self.head = mlp(embedding.embedding_dim, hidden_size, output_dim, dropout)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = features["ids"]
        mask = (ids != 0).to(self.embedding.weight.dtype)
        weights = mask * F.softplus(self.weight_logit[ids]) if self.token_weights else mask
        total = weights.sum(1, keepdim=True).clamp_min(1e-6)
        if self.training and self.dropout.p > 0:  # dropout acts on each token's vector: gather them all
            summed = (self.dropout(self.embedding(ids)) * weights.unsqueeze(-1)).sum(1)
        else:
            # The same weighted sum without a (batch, tokens, dim) tensor: ~4x faster corpus encoding.
            summed = F.embedding_bag(ids, self.embedding.weight, per_sample_weights=weights, mode="sum")
        return F.normalize(self.head(summed / total), dim=-1)

    @torch.no_grad()
    def folded_table(self) -> torch.Tensor:
        """Rows e'_t = w_t (W e_t + b): the plain mean of e' over a text points where this tower's output does,
        because mean_t w_t (W e_t + b) = (Σ w_t / T) · (W ē_w + b) with ē_w the weighted mean. So a
        sentence-transformers `StaticEmbedding` over e' followed by `Normalize` reproduces the tower."""
        if not isinstance(self.head, nn.Linear):
            raise ExportError(
                "a mean tower with an MLP head (model.tower.hidden_size > 0) is not a static "
                "embedding: export needs hidden_size=0"
            )
        weights = F.softplus(self.weight_logit) if self.token_weights else torch.ones(self.embedding.num_embeddings)
        table = self.head(self.embedding.weight.float()) * weights.unsqueeze(-1)
        table[0] = 0.0  # padding never counts
        return table

    def export_modules(self, max_length: int) -> list[nn.Module]:
        from sentence_transformers.base.modules import Normalize
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding

        tokenizer = self.tokenizer.hf_tokenizer(max_length)
        return [StaticEmbedding(tokenizer, embedding_weights=self.folded_table().cpu()), Normalize()]
