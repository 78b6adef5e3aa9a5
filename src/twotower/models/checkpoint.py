"""twotower `.pt` checkpoints: everything needed to rebuild the model, and the history of its training.

Layout (the seed project's): `model_state_dict`, `embedding_matrix`, `word_to_index`, `index_to_word`,
`model_config` {tower, shared, freeze_embeddings, tokenizer, query_max_length, doc_max_length},
`training_stats` {config, training_stats, evaluation_stats, best_metrics, best_epoch}, `epoch`,
`eval_results`, `wandb_run_id`, and `format` ("twotower/1") to tell ours from any other `.pt`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from twotower.atomic import atomic_path
from twotower.models.encoder import TwoTowerEncoder
from twotower.models.tokenizers import tokenizer_from_state
from twotower.models.towers import TwoTower, build_two_tower

FORMAT = "twotower/1"
REQUIRED = ("model_state_dict", "embedding_matrix", "word_to_index", "index_to_word", "model_config",
            "training_stats", "epoch", "eval_results", "wandb_run_id")


class CheckpointError(ValueError):
    """The file is not a twotower checkpoint, or is damaged."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` to `path` through a temp file, so a crash never leaves a torn checkpoint."""
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a twotower `.pt`; anything else (a Lightning `.ckpt`, a truncated file) gets a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign pickles
        raise CheckpointError(f"{path} is not a readable twotower checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = " (a Lightning .ckpt resumes training with ckpt_path=; evaluate.py takes the best.pt/last.pt files)" \
            if isinstance(payload, dict) and "state_dict" in payload else ""
        raise CheckpointError(f"{path} is not a twotower checkpoint: no format={FORMAT!r} marker{hint}")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path} is a damaged twotower checkpoint: missing {missing}")
    return payload


def file_hash(path: str | Path) -> str:
    """SHA-256 of a checkpoint file: ties an index to the exact weights that built it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_from_checkpoint(payload: dict[str, Any]) -> tuple[TwoTower, Any]:
    """Rebuild (two-tower model, tokenizer) from a loaded checkpoint alone."""
    cfg = payload["model_config"]
    tokenizer = tokenizer_from_state(cfg["tokenizer"], payload["word_to_index"], payload["embedding_matrix"].numpy())
    model = build_two_tower(instantiate(cfg["tower"]), payload["embedding_matrix"], shared=cfg["shared"],
                            freeze_embeddings=cfg.get("freeze_embeddings", False))
    model.load_state_dict(payload["model_state_dict"])
    model.eval()
    return model, tokenizer


def load_encoder(path: str | Path, device: str = "cpu") -> TwoTowerEncoder:
    """A ready-to-use encoder from a `.pt` file: `load_encoder(p).encode_queries(["..."])`."""
    payload = load_checkpoint(path)
    model, tokenizer = model_from_checkpoint(payload)
    cfg = payload["model_config"]
    return TwoTowerEncoder(model.to(device), tokenizer, cfg["query_max_length"], cfg["doc_max_length"], device)
