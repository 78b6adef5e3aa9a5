"""twotower `.pt` checkpoints: everything needed to rebuild the model, and the history of its training.

Layout (the seed project's): `model_state_dict`, `embedding_matrix`, `word_to_index`, `index_to_word`,
`model_config` {tower, shared, freeze_embeddings, tokenizer, query_max_length, doc_max_length, tower_fields},
`training_stats` {config, training_stats, evaluation_stats, best_metrics, best_epoch}, `epoch`,
`eval_results`, `wandb_run_id`, `format` ("twotower/2"; "twotower/1" files still load), `checksum` and
`config_checksum`.

For a transformer tower the vocabulary fields hold what the tower needs instead: `word_to_index` /
`index_to_word` are its tokenizer's vocabulary, `embedding_matrix` is empty (the input embeddings are in the
state dict), and `model_config.tower_fields` carries the backbone config and tokenizer files, so the `.pt`
alone rebuilds the model. `checksum` is a SHA-256 over every tensor and `config_checksum` one over what rebuilds
the model besides its weights (`model_config`, with a transformer's backbone config and tokenizer files, and
the vocabulary): a file whose bytes were flipped, or whose config was edited, is refused naming it. Files
written before `config_checksum` existed load as before (their tensors verified, their config not).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from twotower.errors import UserError
from twotower.io.atomic import atomic_path
from twotower.io.checksum import bytes_checksum
from twotower.models.build import build_two_tower, tower_factory
from twotower.models.encoder import TwoTowerEncoder
from twotower.models.static import VocabularyTower
from twotower.models.tokenizers import tokenizer_from_state
from twotower.models.tower import TwoTower

FORMAT = "twotower/2"
READABLE = ("twotower/1", FORMAT)
REQUIRED = (
    "model_state_dict",
    "embedding_matrix",
    "word_to_index",
    "index_to_word",
    "model_config",
    "training_stats",
    "epoch",
    "eval_results",
    "wandb_run_id",
)


class CheckpointError(UserError, ValueError):
    """The file is not a twotower checkpoint, or is damaged."""


def model_fields(model: TwoTower, model_config: dict[str, Any]) -> dict[str, Any]:
    """The model's part of a payload: weights, vocabulary fields, and `model_config` with what its towers need
    to be rebuilt (`tower_fields`)."""
    tower = model.query_tower
    fields: dict[str, Any] = {"model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if isinstance(tower, VocabularyTower):
        fields.update(
            embedding_matrix=tower.embedding.weight.detach().float().cpu().clone(),
            word_to_index=dict(tower.tokenizer.word_to_index),
            index_to_word=list(tower.tokenizer.index_to_word),
        )
        model_config = {**model_config, "tower_fields": {}}
    else:
        vocab = tower.tokenizer.get_vocab()
        fields.update(
            embedding_matrix=torch.zeros(0),
            word_to_index=dict(vocab),
            index_to_word=[w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1])],
        )
        model_config = {**model_config, "tower_fields": tower.checkpoint_fields()}
    return {**fields, "model_config": model_config}


def tensors_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 over the state dict (in key order) and the embedding matrix."""
    digest = hashlib.sha256()
    for name in sorted(payload["model_state_dict"]):
        digest.update(name.encode())
        digest.update(payload["model_state_dict"][name].contiguous().cpu().numpy().tobytes())
    digest.update(torch.as_tensor(payload["embedding_matrix"]).contiguous().numpy().tobytes())
    return digest.hexdigest()


def config_checksum(payload: dict[str, Any]) -> str:
    """Checksum (`twotower.io.checksum`) of `model_config` (tower, backbone config, tokenizer files) and the
    vocabulary, over their canonical JSON."""
    blob = json.dumps(
        [payload["model_config"], payload["word_to_index"], payload["index_to_word"]],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return bytes_checksum(blob.encode("utf-8", "surrogatepass"))


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` to `path` through a temp file, so a crash never leaves a torn checkpoint. Non-finite
    weights are refused: a diverged model must never become `best.pt`."""
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    bad = [k for k, v in payload["model_state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(
            f"refusing to write {path}: the weights hold NaN or inf ({', '.join(bad[:3])}); "
            "training diverged (lower optim.lr)"
        )
    with atomic_path(path) as tmp:
        sums = {"checksum": tensors_checksum(payload), "config_checksum": config_checksum(payload)}
        torch.save({"format": FORMAT, **payload, **sums}, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read a twotower `.pt`; anything else (a Lightning `.ckpt`, a truncated or altered file) gets a clear
    error. `verify=False` skips the checksum (for huge files whose origin you trust)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign pickles
        raise CheckpointError(f"{path} is not a readable twotower checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") not in READABLE:
        hint = (
            " (a Lightning .ckpt resumes training with ckpt_path=; evaluate.py takes the best.pt/last.pt files)"
            if isinstance(payload, dict) and "state_dict" in payload
            else ""
        )
        raise CheckpointError(f"{path} is not a twotower checkpoint: no format={FORMAT!r} marker{hint}")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path} is a damaged twotower checkpoint: missing {missing}")
    if verify and "checksum" in payload and tensors_checksum(payload) != payload["checksum"]:
        raise CheckpointError(f"{path} is damaged: its weights do not match the checksum written with them")
    if verify and "config_checksum" in payload and config_checksum(payload) != payload["config_checksum"]:
        raise CheckpointError(
            f"{path} is damaged: its model config or tokenizer does not match the checksum written with them"
        )
    return payload


def model_from_checkpoint(payload: dict[str, Any], path: str | Path = "checkpoint") -> TwoTower:
    """Rebuild the two-tower model from a loaded checkpoint alone (towers from the allow-list only)."""
    cfg = payload["model_config"]
    factory = tower_factory(cfg["tower"], cfg.get("tower_fields") or {})
    tokenizer = None
    if cfg.get("tokenizer"):
        matrix = payload["embedding_matrix"]
        if len(payload["word_to_index"]) != matrix.shape[0]:
            raise CheckpointError(
                f"{path}: its vocabulary has {len(payload['word_to_index'])} entries but its "
                f"embedding matrix {matrix.shape[0]} rows: tokenizer and model do not match"
            )
        try:
            tokenizer = tokenizer_from_state(cfg["tokenizer"], payload["word_to_index"], matrix.numpy())
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    try:
        model = build_two_tower(
            factory,
            tokenizer,
            shared=cfg["shared"],
            freeze_embeddings=cfg.get("freeze_embeddings", False),
            query_max_length=cfg["query_max_length"],
            doc_max_length=cfg["doc_max_length"],
        )
        model.load_state_dict(payload["model_state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: its weights do not fit the model its config describes ({exc})") from None
    return model.eval()


def load_encoder(path: str | Path, device: str = "cpu", verify: bool = True) -> TwoTowerEncoder:
    """A ready-to-use encoder from a `.pt` file: `load_encoder(p).encode_queries(["..."])`."""
    model = model_from_checkpoint(load_checkpoint(path, verify), path)
    return TwoTowerEncoder(model.to(device), device)
