"""The deep-memory model: a query-side adapter over a frozen embedding function.

Maths: q' = q + W q + U relu(V q + c) + e,   score(q, d) = <q' / ||q'||, d>   (documents d stay as stored).

W (full or low-rank `A B`) and U start at zero, so an untrained adapter is the identity map and deep-memory
search starts exactly where plain search is; `distance_from_identity()` is the penalty ||W||^2 + ||U||^2 that
keeps a trained adapter close to it. Training also learns a softmax temperature `tau` (see training.py); it
does not change rankings, so it is stored but unused at search time.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class QueryAdapter(nn.Module):
    """Residual query adapter: `kind="linear"` (W only) or `kind="mlp"` (W plus a one-hidden-layer MLP)."""

    def __init__(
        self,
        dim: int,
        kind: str = "mlp",
        hidden: int = 512,
        rank: int | None = None,
        dropout: float = 0.1,
        temperature: float = 0.05,
    ) -> None:
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise ValueError(f"adapter kind must be 'linear' or 'mlp', got {kind!r}")
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim, self.kind, self.hidden, self.rank = dim, kind, hidden, rank
        if rank:
            # Low rank for wide embeddings: W = A B with A zero so the product starts at zero.
            self.down = nn.Linear(dim, rank, bias=False)
            self.up = nn.Linear(rank, dim, bias=False)
            nn.init.normal_(self.down.weight, std=1.0 / math.sqrt(dim))
            nn.init.zeros_(self.up.weight)
        else:
            self.linear = nn.Linear(dim, dim, bias=False)
            nn.init.zeros_(self.linear.weight)
        if kind == "mlp":
            self.mlp_in = nn.Linear(dim, hidden)
            self.mlp_out = nn.Linear(hidden, dim)
            nn.init.zeros_(self.mlp_out.weight)
            nn.init.zeros_(self.mlp_out.bias)
        self.input_dropout = nn.Dropout(dropout)
        self.log_tau = nn.Parameter(torch.tensor(math.log(temperature)))

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp()

    def delta_weight(self) -> torch.Tensor:
        """W, the linear part's departure from the identity."""
        return self.up.weight @ self.down.weight if self.rank else self.linear.weight

    def distance_from_identity(self) -> torch.Tensor:
        """||W||_F^2 (+ ||U||_F^2 for the MLP): zero exactly when the adapter is the identity map."""
        dist = self.delta_weight().pow(2).sum()
        if self.kind == "mlp":
            dist = dist + self.mlp_out.weight.pow(2).sum() + self.mlp_out.bias.pow(2).sum()
        return dist

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """Adapted queries (not normalised; rank with cosine against the stored documents)."""
        # Dropout on the input only while training: the map learns not to lean on single coordinates.
        x = self.input_dropout(q)
        delta = self.up(self.down(x)) if self.rank else self.linear(x)
        if self.kind == "mlp":
            delta = delta + self.mlp_out(torch.relu(self.mlp_in(x)))
        return q + delta

    def numpy_forward(self):
        """`forward` for inference as a plain numpy function: a single query costs microseconds, not the
        ~10 us per torch op call that would add tens of percent to a 0.2 ms search on small embeddings."""
        with torch.no_grad():
            w = (self.delta_weight().T + torch.eye(self.dim)).numpy().copy()
            mlp = (
                (
                    self.mlp_in.weight.T.numpy().copy(),
                    self.mlp_in.bias.numpy().copy(),
                    self.mlp_out.weight.T.numpy().copy(),
                    self.mlp_out.bias.numpy().copy(),
                )
                if self.kind == "mlp"
                else None
            )

        def forward(q: np.ndarray) -> np.ndarray:
            q = np.asarray(q, dtype=np.float32)
            out = q @ w
            if mlp is not None:
                v, c, u, e = mlp
                out += np.maximum(q @ v + c, 0.0) @ u + e
            return out

        return forward

    def config(self) -> dict:
        """Constructor arguments, saved next to the weights so a model file rebuilds itself."""
        return {
            "dim": self.dim,
            "kind": self.kind,
            "hidden": self.hidden,
            "rank": self.rank,
            "dropout": self.input_dropout.p,
            "temperature": float(self.tau),
        }
