"""Embedding distillation: the student's vectors regress onto the teacher's (sentence-transformers' `MSELoss`).

Score distillation (MarginMSE, KL) passes on a few numbers per query; the teacher's vectors pass on its whole
geometry for every query and passage of a batch. For unit vectors,

    L = mean_x ‖s(x) − t(x)‖² = mean_x (2 − 2 cos(s(x), t(x)))

over the batch's queries, positives and negatives (Reimers & Gurevych 2020, "Making Monolingual Sentence
Embeddings Multilingual using Knowledge Distillation"). The student's output width must equal the teacher's.
Inputs: q (B, d), p (B, d), n (B, k, d) and `teacher_vectors` {"query": (B, d), "documents": (B·(1+k), d)}
(positives first, then each row's negatives), which the DataModule collates when `data.teacher_vectors=true`.
"""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingMSELoss(nn.Module):
    """L = mean ‖s(x) − t(x)‖² over the batch's queries and passages (queries weighted by `query_weight`)."""

    name = "embedding_mse"
    needs_teacher = False
    needs_teacher_vectors = True

    def __init__(self, query_weight: float = 1.0) -> None:
        super().__init__()
        self.query_weight = query_weight

    def forward(
        self,
        q: torch.Tensor,
        p: torch.Tensor,
        n: torch.Tensor,
        teacher: torch.Tensor | None = None,
        teacher_vectors: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if teacher_vectors is None:
            raise ValueError(
                "loss embedding_mse needs the teacher's vectors: set data.prepare.teacher and data.teacher_vectors=true"
            )
        docs = torch.cat([p, n.reshape(-1, n.shape[-1])])
        tq, td = teacher_vectors["query"].to(q.dtype), teacher_vectors["documents"].to(q.dtype)
        if tq.shape != q.shape or td.shape != docs.shape:
            raise ValueError(
                f"teacher vectors {tuple(tq.shape)}/{tuple(td.shape)} do not match the student's "
                f"{tuple(q.shape)}/{tuple(docs.shape)}: the student's output width must be the teacher's"
            )
        query_term = (q - tq).pow(2).sum(-1).mean()
        doc_term = (docs - td).pow(2).sum(-1).mean()
        return (self.query_weight * query_term + doc_term) / (1 + self.query_weight)
