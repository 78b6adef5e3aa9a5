"""Teachers: a stronger model whose scores a student learns from (distillation) and whose retrieval mines hard
negatives. `load_teacher(spec)` takes

* `minilm`: the shipped all-MiniLM-L6-v2 (a bi-encoder, MRR@10 0.531 zero-shot on the shared dev set);
* a sentence-transformers model folder (a bi-encoder), or a cross-encoder folder (`CrossEncoder`: scores
  each pair, cannot mine);
* a twotower `.pt` checkpoint (any of our towers).

A bi-encoder's corpus vectors are computed once and cached (resumably: a killed run continues where it
stopped) under a key of the teacher's identity and the corpus' content; its query vectors likewise. Scores are
then dot products of cached vectors, so scoring new negatives (an ANCE-style refresh) costs nothing more.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from twotower.io.fingerprint import file_fingerprint
from twotower.io.paths import cache_dir
from twotower.retrieval.embedding_cache import cached_embeddings, texts_digest

log = logging.getLogger(__name__)

ENCODE_BATCH = 64  # a transformer teacher on CPU: larger batches only pad more
CACHE_PART = 2048


class Teacher:
    """A bi-encoder teacher: `encode(texts, side)` -> unit rows; cached vectors; scores are inner products."""

    can_mine = True

    def __init__(self, name: str, identity: str, encode: Callable[[list[str], str], np.ndarray]) -> None:
        self.name = name
        self.identity = identity  # changes whenever the teacher's weights do
        self._encode = encode

    def vectors(
        self, ids: Sequence[str], text_of: Callable[[list[str]], list[str]], side: str, progress: bool = True
    ) -> np.ndarray:
        """Vectors of `ids` (rows in that order), from the cache or encoded (resumable) and cached."""
        texts = text_of(list(ids))
        # The key covers the teacher's weights and every text: another corpus or teacher never reuses it.
        key = f"{self.identity}:{side}"
        target = cache_dir() / "teacher" / f"{self.name}_{side}_{texts_digest(texts, key)[:16]}.npy"
        return cached_embeddings(
            lambda batch: self._encode(batch, side), texts, target, f"{self.name} {side}", CACHE_PART, progress, key=key
        )

    def score(self, query_vectors: np.ndarray, doc_vectors: np.ndarray) -> np.ndarray:
        """(rows, d) x (rows, m, d) -> (rows, m) inner products."""
        return np.einsum("rd,rmd->rm", query_vectors, doc_vectors).astype(np.float32)


class CrossEncoderTeacher:
    """A cross-encoder teacher: scores (query, passage) pairs directly; it cannot mine negatives."""

    can_mine = False

    def __init__(self, name: str, identity: str, model) -> None:
        self.name, self.identity, self.model = name, identity, model

    def score_pairs(self, queries: list[str], passages: list[list[str]]) -> np.ndarray:
        pairs = [(q, p) for q, row in zip(queries, passages) for p in row]
        scores = self.model.predict(pairs, batch_size=ENCODE_BATCH, show_progress_bar=False)
        return np.asarray(scores, dtype=np.float32).reshape(len(queries), -1)


def _sentence_transformer_teacher(path: Path, name: str) -> Teacher:
    from sentence_transformers import SentenceTransformer

    loaded: list = []

    def encode(texts: list[str], side: str) -> np.ndarray:
        # The model loads only when something is left to encode: a warm cache never pays for it.
        if not loaded:
            import torch

            loaded.append(SentenceTransformer(str(path), device="cuda" if torch.cuda.is_available() else "cpu"))
        model = loaded[0]
        fn = model.encode_query if side == "query" else model.encode_document
        return np.asarray(
            fn(
                texts,
                batch_size=ENCODE_BATCH,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )

    return Teacher(name, folder_identity(path), encode)


def _checkpoint_teacher(path: Path) -> Teacher:
    from twotower.models.checkpoint import load_encoder

    loaded: list = []

    def encode(texts: list[str], side: str) -> np.ndarray:
        if not loaded:
            import torch

            loaded.append(load_encoder(path, "cuda" if torch.cuda.is_available() else "cpu"))
        enc = loaded[0]
        return enc.encode_queries(texts) if side == "query" else enc.encode_documents(texts)

    return Teacher(f"ckpt-{path.stem}", file_fingerprint(path), encode)


def folder_identity(path: Path) -> str:
    """What changes whenever a model folder's weights do: the fingerprints of its weight files."""
    weights = [p for p in sorted(path.rglob("*")) if p.suffix in (".safetensors", ".bin") and p.is_file()]
    return ",".join(file_fingerprint(p) for p in weights) or str(path.resolve())


def load_teacher(spec: str) -> Teacher | CrossEncoderTeacher:
    """The teacher `spec` names (see the module docstring); anything else is refused naming `teacher=`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if spec == "minilm":
        from twotower.models.pretrained import minilm_path

        return _sentence_transformer_teacher(minilm_path(), "minilm")
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"teacher not found: {path} (data.prepare.teacher takes `minilm`, a "
            "sentence-transformers or cross-encoder model folder, or a twotower .pt checkpoint)"
        )
    if path.is_file():
        return _checkpoint_teacher(path)
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ValueError(f"{path} is not a model folder (no config.json or modules.json): data.prepare.teacher")
    if _is_cross_encoder(path):
        from sentence_transformers import CrossEncoder

        return CrossEncoderTeacher(f"ce-{path.name}", folder_identity(path), CrossEncoder(str(path), device="cpu"))
    return _sentence_transformer_teacher(path, f"st-{path.name}")


def _is_cross_encoder(path: Path) -> bool:
    import json

    config = path / "config.json"
    if not config.is_file():
        return False
    architectures = json.loads(config.read_text()).get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in architectures)
