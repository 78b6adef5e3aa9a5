"""The `LightningModule`: a two-tower model trained on (query, positive, negatives) batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from twotower.models.encoder import TwoTowerEncoder
from twotower.models.tower import TwoTower

RUN_CONFIG_KEY = "twotower_run_config"
"""Where a Lightning `.ckpt` of ours keeps the resolved run config it was trained under (plain types only)."""


class DivergedError(ValueError):
    """The loss became NaN or infinite: the run stops (one clear line, exit 1) rather than save a broken model."""


class TwoTowerModule(L.LightningModule):
    """Wraps the towers, the loss, AdamW and its schedule.

    `optimizer` and `scheduler` are Hydra partials: `optimizer(params)` and
    `scheduler(optimizer, total_steps=...)` (see `twotower/conf/optim/` and `twotower/conf/scheduler/`). Each tower gives its
    parameter groups (a transformer's backbone may learn at its own rate).
    """

    def __init__(
        self,
        model: TwoTower,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        model_config: dict | None = None,
        run_config: dict | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.model_config = model_config or {}
        self.run_config = run_config or {}
        self.seed = seed

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning's last.ckpt carries the run's config: `twotower resume` compares config.yaml with it.
        checkpoint[RUN_CONFIG_KEY] = self.run_config

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout draws depend on (seed, step) only, so a run resumed from a checkpoint replays exactly what
        # the uninterrupted run did (Lightning does not restore the RNG state).
        torch.manual_seed(self.seed * 1_000_003 + self.global_step)

    def encoder(self) -> TwoTowerEncoder:
        return TwoTowerEncoder(self.model, device=self.device)

    def _embed(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = self.model.encode_queries(batch["query"]).float()
        # Positives then every row's negatives, one pass through the document tower.
        docs = self.model.encode_documents(batch["documents"]).float()
        b = q.shape[0]
        return q, docs[:b], docs[b:].reshape(b, docs.shape[0] // b - 1, -1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        q, p, n = self._embed(batch)
        if "teacher_vectors" in batch:  # only losses that regress onto the teacher's vectors take them
            loss = self.loss(q, p, n, teacher=batch.get("teacher"), teacher_vectors=batch["teacher_vectors"])
        else:
            loss = self.loss(q, p, n, teacher=batch.get("teacher"))
        if not torch.isfinite(loss):
            raise DivergedError(
                f"the training loss is {loss.item()} at step {self.global_step}: training diverged "
                "(lower optim.lr, or raise loss.temperature)"
            )
        for name, value in getattr(self.loss, "last_parts", {}).items():
            self.log(f"train/loss_{name}", value, on_step=False, on_epoch=True, batch_size=q.shape[0])
        with torch.no_grad():
            # A triplet counts as right when the positive outscores every hard negative.
            accuracy = ((q * p).sum(-1) > torch.einsum("bd,bkd->bk", q, n).max(-1).values).float().mean()
        size = q.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/accuracy", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=size)
        return loss

    def configure_optimizers(self):
        # The base rate comes from the optimizer partial (optim.lr); a tower may set its own for a part of it.
        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        params = (
            self.model.parameter_groups(lr) if lr is not None else [p for p in self.parameters() if p.requires_grad]
        )
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(
            optimizer=optimizer, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
