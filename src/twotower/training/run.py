"""`train(cfg)`: wire a composed Hydra config into Lightning and run it. Used by `train.py` and `twotower.api`."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from twotower.conf.aliases import place_groups
from twotower.io.atomic import atomic_path
from twotower.io.output import claim_run_folder
from twotower.models.build import build_two_tower, tower_class_of
from twotower.models.module import TwoTowerModule
from twotower.training.resume import check_resume

log = logging.getLogger(__name__)


RUN_FILES = ("config.yaml", "checkpoints", "metrics.json", "csv", "wandb", "error.txt")
"""What a training run writes into its folder (a folder of only these, from before output markers, is a run)."""


class OutOfMemory(ValueError):
    """The GPU ran out of memory; the message names the settings that lower it."""


@dataclass
class TrainResult:
    module: TwoTowerModule
    metrics: dict[str, Any]  # metrics.json: best and last metrics, per-epoch history
    run_dir: Path
    best_checkpoint: Path | None
    trainer: L.Trainer | None = field(default=None, repr=False)

    @property
    def best(self) -> dict[str, float]:
        return self.metrics.get("best", {})

    def encoder(self):
        return self.module.encoder()


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def make_loggers(cfg: DictConfig) -> list:
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if not node or "_target_" not in node:
            continue
        node = OmegaConf.to_container(node, resolve=True)
        if node.get("offline") == "auto":
            node["offline"] = not wandb_has_credentials()
            if node["offline"]:
                os.environ.setdefault("WANDB_MODE", "offline")
        if "save_dir" in node:
            Path(node["save_dir"]).mkdir(parents=True, exist_ok=True)
        loggers.append(instantiate(node))
    return loggers


def train(cfg: DictConfig) -> TrainResult:
    """Prepare data, build the towers from config, fit, and return the metrics and run folder."""
    from twotower.training.validate import validate_config

    place_groups(cfg)  # an option file of the user's written for the old layout still takes effect
    validate_config(cfg)  # bad settings fail here, before any data work
    run_dir = Path(cfg.paths.run_dir)
    check_resume(run_dir, cfg)  # a resume in place keeps the run's own settings
    if not cfg.get("ckpt_path") and os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("RANK", "0") == "0":
        # A new run never lands on a user's folder or over a finished run (DDP's other ranks share rank 0's).
        claim_run_folder(
            run_dir,
            "train",
            bool(cfg.get("overwrite", False)),
            own=RUN_FILES,
            replace_own=False,
            hint=f"resume it with `twotower resume {run_dir}` or choose a new hydra.run.dir",
        )
    L.seed_everything(cfg.seed, workers=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The full config as it ran goes into every .pt checkpoint and beside the run.
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model, model_config = build_model(cfg, datamodule)
    module = TwoTowerModule(
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        model_config=model_config,
        run_config=resolved,
        seed=cfg.seed,
    )
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values() if node and "_target_" in node]
    loggers = make_loggers(cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    try:
        with kept_csv_history(loggers, resuming=bool(cfg.get("ckpt_path"))):
            trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except torch.cuda.OutOfMemoryError:
        raise OutOfMemory(
            f"out of GPU memory: lower data.batch_size (now {cfg.data.batch_size}), model.doc_max_length (now "
            f"{cfg.model.doc_max_length}) or data.prepare.num_negatives (now {cfg.data.prepare.num_negatives}), or set "
            "model.tower.gradient_checkpointing=true (transformer towers) or trainer.precision=bf16-mixed"
        ) from None

    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    best = run_dir / "checkpoints" / "best.pt"
    return TrainResult(module, metrics, run_dir, best if best.exists() else None, trainer)


@contextlib.contextmanager
def kept_csv_history(loggers: list, resuming: bool) -> Iterator[None]:
    """Lightning's CSVLogger deletes an existing `metrics.csv` when it starts. On resume, the rows of the epochs
    before the resumed one are put back in front of the new rows when training ends or stops (atomically)."""
    from lightning.pytorch.loggers import CSVLogger

    saved = {}
    if resuming:
        for logger in loggers:
            path = Path(logger.log_dir) / "metrics.csv" if isinstance(logger, CSVLogger) else None
            if path is not None and path.is_file():
                saved[path] = list(csv.DictReader(io.StringIO(path.read_text())))
    try:
        yield
    finally:
        for path, old in saved.items():
            new = list(csv.DictReader(io.StringIO(path.read_text()))) if path.is_file() else []
            first = min((float(r["epoch"]) for r in new if r.get("epoch")), default=math.inf)
            rows = [r for r in old if not r.get("epoch") or float(r["epoch"]) < first] + new
            fields = sorted({key for row in rows for key in row})
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)


def build_model(cfg: DictConfig, datamodule) -> tuple:
    """The two-tower model of `cfg.model` and the `model_config` its checkpoints carry. Vocabulary towers get the
    `model.tokenizer` (the `tokenizer` group's) tokenizer, built over the training text; a transformer tower brings its own."""
    tower = instantiate(cfg.model.tower)
    tokenizer = None
    if getattr(tower_class_of(tower), "uses_vocabulary", False):
        tokenizer = instantiate(cfg.model.tokenizer)(texts=datamodule.vocabulary_texts())
    model = build_two_tower(
        tower,
        tokenizer,
        shared=cfg.model.shared,
        freeze_embeddings=cfg.model.get("freeze_embeddings", False),
        query_max_length=cfg.model.query_max_length,
        doc_max_length=cfg.model.doc_max_length,
    )
    model_config = {
        "tower": OmegaConf.to_container(cfg.model.tower, resolve=True),
        "shared": cfg.model.shared,
        "freeze_embeddings": cfg.model.get("freeze_embeddings", False),
        "tokenizer": tokenizer.state() if tokenizer is not None else None,
        "query_max_length": cfg.model.query_max_length,
        "doc_max_length": cfg.model.doc_max_length,
    }
    return model, model_config
