"""The `LightningModule`: a two-tower model trained on (query, positive, negatives) batches."""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
from torch import nn

from twotower.models.encoder import TwoTowerEncoder
from twotower.models.towers import TwoTower


class TwoTowerModule(L.LightningModule):
    """Wraps the towers, the loss, AdamW and its schedule.

    `optimizer` and `scheduler` are Hydra partials: `optimizer(params)` and
    `scheduler(optimizer, total_steps=...)` (see `conf/optim/` and `conf/scheduler/`).
    """

    def __init__(self, model: TwoTower, loss: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None, tokenizer=None, model_config: dict | None = None,
                 run_config: dict | None = None, seed: int = 0) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.tokenizer = tokenizer
        self.model_config = model_config or {}
        self.run_config = run_config or {}
        self.seed = seed

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout draws depend on (seed, step) only, so a run resumed from a checkpoint replays exactly what
        # the uninterrupted run did (Lightning does not restore the RNG state).
        torch.manual_seed(self.seed * 1_000_003 + self.global_step)

    def encoder(self) -> TwoTowerEncoder:
        return TwoTowerEncoder(self.model, self.tokenizer, self.model_config.get("query_max_length", 32),
                               self.model_config.get("doc_max_length", 128), device=self.device)

    def _embed(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, k, length = batch["negatives"].shape
        q = self.model.encode_queries(batch["query"])
        # Positives and negatives share a padded length: one pass through the document tower.
        docs = self.model.encode_documents(torch.cat([batch["positive"], batch["negatives"].reshape(b * k, length)]))
        docs = docs.float()
        return q.float(), docs[:b], docs[b:].reshape(b, k, -1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        q, p, n = self._embed(batch)
        loss = self.loss(q, p, n)
        with torch.no_grad():
            # A triplet counts as right when the positive outscores every hard negative.
            accuracy = ((q * p).sum(-1) > torch.einsum("bd,bkd->bk", q, n).max(-1).values).float().mean()
        size = q.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/accuracy", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=size)
        return loss

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
