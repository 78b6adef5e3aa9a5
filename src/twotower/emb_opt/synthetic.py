"""A seeded test problem: clustered random vectors and a hidden score with several separate peaks.

numpy only (no package imports at module level), so the emb-opt comparison in `bench/bench_emb_opt.py`
can load this file by path inside its own virtualenv and score exactly the same way.

score(x) = sum_m h_m exp(-||x - c_m||^2 / (2 w_m^2)) + mlp_scale * tanh(x W1 + b1) . w2 / sqrt(hidden):
Gaussian bumps near some cluster centres (the peaks) plus a small random-MLP term, so the best items sit
in several neighbourhoods and the landscape is not exactly radial.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _rng(seed: int, stream: int) -> np.random.Generator:
    # Separate streams: the score depends on (dim, n_clusters, seed) only, not on how many vectors exist.
    return np.random.default_rng([seed, stream])


def cluster_centres(dim: int, n_clusters: int, seed: int) -> np.ndarray:
    return _rng(seed, 0).normal(size=(n_clusters, dim)).astype(np.float32)


def clustered_vectors(n: int, dim: int = 32, n_clusters: int = 100, spread: float = 0.5, seed: int = 0) -> np.ndarray:
    """(n, dim) float32: Gaussian clusters of uneven size around `cluster_centres`, std `spread`."""
    centres = cluster_centres(dim, n_clusters, seed)
    rng = _rng(seed, 1)
    sizes = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, size=n, p=sizes)
    return (centres[labels] + spread * rng.normal(size=(n, dim))).astype(np.float32)


class BumpScore:
    """The hidden score (formula in the module docstring); call it on an (n, dim) array or on `Items`."""

    def __init__(
        self,
        centres: np.ndarray,
        heights: np.ndarray,
        widths: np.ndarray,
        w1: np.ndarray,
        b1: np.ndarray,
        w2: np.ndarray,
        mlp_scale: float,
    ) -> None:
        self.centres, self.heights, self.widths = centres, heights, widths
        self.w1, self.b1, self.w2, self.mlp_scale = w1, b1, w2, mlp_scale

    @classmethod
    def random(
        cls,
        dim: int = 32,
        n_clusters: int = 100,
        n_bumps: int = 8,
        seed: int = 0,
        offset: float = 1.0,
        width: float = 2.0,
        mlp_scale: float = 0.05,
        hidden: int = 64,
    ) -> BumpScore:
        rng = _rng(seed, 2)
        anchors = cluster_centres(dim, n_clusters, seed)[rng.choice(n_clusters, size=n_bumps, replace=False)]
        # Off-centre peaks: the best items are at one side of a cluster, not at its middle.
        centres = anchors + offset * rng.normal(size=anchors.shape) / np.sqrt(dim)
        heights = rng.uniform(0.8, 1.0, size=n_bumps)
        widths = width * rng.uniform(0.8, 1.2, size=n_bumps)
        w1 = rng.normal(size=(dim, hidden)) / np.sqrt(dim)
        b1 = rng.normal(size=hidden)
        w2 = rng.normal(size=hidden)
        return cls(centres, heights, widths, w1, b1, w2, mlp_scale)

    def __call__(self, x: Any) -> np.ndarray:
        x = np.asarray(getattr(x, "vectors", x), dtype=np.float64)
        sq = (x * x).sum(1)[:, None] - 2 * x @ self.centres.T + (self.centres**2).sum(1)[None, :]
        bumps = (self.heights * np.exp(-np.maximum(sq, 0) / (2 * self.widths**2))).sum(1)
        mlp = np.tanh(x @ self.w1 + self.b1) @ self.w2 / np.sqrt(len(self.w2))
        return bumps + self.mlp_scale * mlp


def synthetic_vector_db(
    n: int = 100_000, dim: int = 32, n_clusters: int = 100, spread: float = 0.5, seed: int = 0, backend: str = "faiss"
) -> Any:
    """The clustered vectors in a `FaissVectorDB` (flat L2) or `NumpyVectorDB`: a Hydra `_target_`."""
    from twotower.emb_opt.vector_db import FaissVectorDB, NumpyVectorDB

    vectors = clustered_vectors(n, dim, n_clusters, spread, seed)
    if backend == "faiss":
        return FaissVectorDB.from_vectors(vectors)
    if backend == "numpy":
        return NumpyVectorDB(vectors)
    raise ValueError(f"backend must be 'faiss' or 'numpy', got {backend!r}")
