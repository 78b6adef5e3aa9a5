"""The one encoder interface: a `Tower` owns its text (tokenisation), maps it to L2-normalised vectors, and
describes itself for its own save/load; `TwoTower` pairs a query tower with a document tower.

The rest of the code (collation, the LightningModule, evaluation, checkpoints, search, Deep Memory) talks only
to this interface, as sentence-transformers' code talks to its `Module`s and Tevatron's to its `EncoderModel`:

    features = tower.tokenize(["cooking an egg"], max_length=32)   # dict of tensors, any keys the tower needs
    vectors = tower(features)                                        # (batch, dim), unit rows

Implementations: `static.MeanTower` (a weighted bag of word or WordPiece vectors), `recurrent.GRUTower` /
`LSTMTower` / `RNNTower`, and `transformer.TransformerTower` (any local Hugging Face encoder).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


class ExportError(ValueError):
    """A tower that has no equivalent in the sentence-transformers model format."""


class Tower(nn.Module, ABC):
    """Text -> L2-normalised vectors. Subclasses set `uses_vocabulary` when they are built over a tokenizer made
    from the training text (static and recurrent towers), and `encode_batch_size` for corpus encoding."""

    uses_vocabulary: ClassVar[bool] = True
    encode_batch_size: ClassVar[int] = 2048

    @abstractmethod
    def tokenize(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        """Texts -> the feature tensors `forward` reads (right-padded to the longest text, at most `max_length`)."""

    @abstractmethod
    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features -> (batch, output_dim) rows of unit length."""

    @abstractmethod
    def token_counts(self, text: str) -> tuple[int, int]:
        """(tokens, unknown tokens) of `text`: lets a search warn about a query it cannot read."""

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups; a transformer gives its backbone a learning rate of its own."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def export_modules(self, max_length: int) -> list[nn.Module]:
        """sentence-transformers modules that compute exactly this tower (see `models.export`)."""
        raise ExportError(
            f"{type(self).__name__} has no sentence-transformers equivalent; export supports "
            "static (mean) towers with a linear head and transformer towers"
        )


class TwoTower(nn.Module):
    """A query tower and a document tower; `shared` when they are one module. Each side truncates to its own
    maximum length (queries are short, passages long)."""

    def __init__(
        self,
        query_tower: Tower,
        document_tower: Tower | None = None,
        query_max_length: int = 32,
        doc_max_length: int = 128,
    ) -> None:
        super().__init__()
        self.query_tower = query_tower
        self.document_tower = document_tower if document_tower is not None else query_tower
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length

    @property
    def shared(self) -> bool:
        return self.document_tower is self.query_tower

    def tokenize_queries(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.query_tower.tokenize(texts, self.query_max_length)

    def tokenize_documents(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.document_tower.tokenize(texts, self.doc_max_length)

    def encode_queries(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.query_tower(features)

    def encode_documents(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.document_tower(features)

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        groups = self.query_tower.parameter_groups(lr)
        if not self.shared:
            seen = {id(p) for g in groups for p in g["params"]}
            for group in self.document_tower.parameter_groups(lr):
                # Separate towers may still share their word embedding table: list each parameter once.
                group = {**group, "params": [p for p in group["params"] if id(p) not in seen]}
                if group["params"]:
                    groups.append(group)
        return groups


def padded(rows: list[list[int]]) -> torch.Tensor:
    """Id lists -> (batch, longest) int64, right-padded with 0."""
    out = np.zeros((len(rows), max(map(len, rows), default=1)), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)
