"""Text in, vectors out: a trained two-tower model with its tokenizer, ready to embed queries and passages."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from rich.progress import Progress

from twotower.models.towers import TwoTower


class TwoTowerEncoder:
    """Encodes texts with the query or document tower; returns float32 rows of unit length."""

    def __init__(self, model: TwoTower, tokenizer, query_max_length: int = 32, doc_max_length: int = 128,
                 device: str | torch.device = "cpu") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length
        self.device = torch.device(device)

    @property
    def dim(self) -> int:
        with torch.no_grad():
            return int(self.encode_queries(["dimension probe"]).shape[1])

    # Large batches pay: on CPU a recurrent tower's cost is dominated by per-step overhead, and a 2,048-row batch
    # encodes a GRU corpus ~10x faster than 256-row ones (bench/bench_train.py).
    def encode_queries(self, texts: Sequence[str], batch_size: int = 2048, progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.model.encode_queries, self.query_max_length, batch_size, progress, "queries")

    def encode_documents(self, texts: Sequence[str], batch_size: int = 2048, progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.model.encode_documents, self.doc_max_length, batch_size, progress, "passages")

    @torch.inference_mode()
    def _encode(self, texts, tower, max_length, batch_size, progress, what) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        # Similar lengths in a batch waste less compute on padding; the order is restored at the end.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        with Progress(transient=True, disable=not progress) as bar:
            task = bar.add_task(f"encoding {what}", total=len(texts))
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                ids = self.tokenizer.encode([texts[i] for i in idx], max_length).to(self.device)
                vecs = tower(ids).float().cpu().numpy()
                if out is None:
                    out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                bar.advance(task, len(idx))
        self.model.train(was_training)
        return out
