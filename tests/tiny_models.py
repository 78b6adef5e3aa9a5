"""Tiny untrained checkpoints for tests that need a real `.pt` but no training (search, faults, serving)."""

from pathlib import Path

import torch

from twotower.models.build import build_two_tower
from twotower.models.checkpoint import model_fields, save_checkpoint
from twotower.models.tokenizers import WordTokenizer

MAX_TOKENS = 48


def make_checkpoint(path: Path, texts: list[str], seed: int = 0, dim: int = 32) -> Path:
    """A twotower .pt holding an untrained shared mean tower over a vocabulary built from `texts`."""
    torch.manual_seed(seed)
    tokenizer = WordTokenizer.build(texts, min_freq=1, embedding_dim=32, seed=seed)
    tower = {
        "_target_": "twotower.models.static.MeanTower",
        "_partial_": True,
        "output_dim": dim,
        "token_weights": False,
    }
    from hydra.utils import instantiate

    model = build_two_tower(
        instantiate(tower), tokenizer, shared=True, query_max_length=MAX_TOKENS, doc_max_length=MAX_TOKENS
    )
    model_config = {
        "tower": tower,
        "shared": True,
        "freeze_embeddings": False,
        "tokenizer": tokenizer.state(),
        "query_max_length": MAX_TOKENS,
        "doc_max_length": MAX_TOKENS,
    }
    save_checkpoint(
        path,
        {
            **model_fields(model, model_config),
            "training_stats": {},
            "epoch": 0,
            "eval_results": {},
            "wandb_run_id": None,
        },
    )
    return path


def first_passages(msmarco_dir: Path, n: int) -> dict[str, str]:
    """The first `n` passages of the shared collection, {pid: text}: a small real corpus to index."""
    from twotower.data.msmarco import read_collection

    collection = read_collection(msmarco_dir / "msmarco-passage" / "collection.tsv")
    return dict(list(collection.items())[:n])
