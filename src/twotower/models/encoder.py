"""Text in, vectors out: a trained `TwoTower` ready to embed queries and passages (Tevatron's `encode_query` /
`encode_passage`, here `encode_queries` / `encode_documents`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from twotower.models.tower import TwoTower


class TwoTowerEncoder:
    """Encodes texts with the query or document tower; returns float32 rows of unit length.

    Batches follow each tower's own size (`Tower.encode_batch_size`: thousands of rows for a static tower, ~128
    for a transformer) unless `batch_size` is given, sorted by length so padding stays low."""

    def __init__(self, model: TwoTower, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)

    @property
    def query_max_length(self) -> int:
        return self.model.query_max_length

    @property
    def doc_max_length(self) -> int:
        return self.model.doc_max_length

    @property
    def dim(self) -> int:
        return int(self.encode_queries(["dimension probe"]).shape[1])

    def token_counts(self, text: str) -> tuple[int, int]:
        """(tokens, unknown tokens) of a query, as the query tower reads it."""
        return self.model.query_tower.token_counts(text)

    def encode_queries(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        return self._encode(
            texts,
            self.model.tokenize_queries,
            self.model.encode_queries,
            batch_size or self.model.query_tower.encode_batch_size,
            progress,
            "queries",
        )

    def encode_documents(
        self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        return self._encode(
            texts,
            self.model.tokenize_documents,
            self.model.encode_documents,
            batch_size or self.model.document_tower.encode_batch_size,
            progress,
            "passages",
        )

    @torch.inference_mode()
    def _encode(self, texts, tokenize, tower, batch_size, progress, what) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        # Similar lengths in a batch waste less compute on padding; the order is restored at the end.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        columns = (TextColumn(f"encoding {what}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=True, disable=not progress) as bar:
            task = bar.add_task(what, total=len(texts))
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                features = {k: v.to(self.device) for k, v in tokenize([texts[i] for i in idx]).items()}
                vecs = tower(features).float().cpu().numpy()
                if out is None:
                    out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                bar.advance(task, len(idx))
        self.model.train(was_training)
        return out
