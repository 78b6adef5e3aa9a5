"""The Lightning side of adapter training: the objective (`DeepMemoryModule`), its starting temperature, and
the per-epoch validation on the whole store (`ValidationCallback`), which Lightning's `EarlyStopping` follows.

Objective: a softmax over documents with a learned temperature,

    loss(q) = sum_j w_qj * (logsumexp_{d in C} <f(q), d> / tau  -  <f(q), d_j> / tau) / sum_j w_qj
              + lambda * ||f - identity||^2,

where d_j are q's relevant documents with relevance weights w_qj, f(q) is the unit-length adapted query and
C is the candidate set: every stored document (`full_softmax`), or the batch's relevant documents (in-batch
negatives) plus hard negatives mined once from the store with the base embeddings.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from twotower.deep_memory.adapter import QueryAdapter
from twotower.deep_memory.data import RelevanceData
from twotower.deep_memory.evaluation import evaluate_queries
from twotower.deep_memory.settings import TrainingSettings


class DeepMemoryModule(L.LightningModule):
    """Lightning wrapper: the adapter learns, the store's document matrix is a frozen, unsaved buffer."""

    def __init__(
        self, adapter: QueryAdapter, docs: torch.Tensor, settings: TrainingSettings, full_softmax: bool
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.settings = settings
        self.full_softmax = full_softmax
        self.register_buffer("docs", docs, persistent=False)
        self.steps_per_epoch = 1

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        q, rows, cols, weights, negatives = batch
        adapted = F.normalize(self.adapter(q), dim=-1)
        inv_tau = 1.0 / self.adapter.tau
        if self.full_softmax:
            logits = adapted @ self.docs.T * inv_tau
        else:
            # Candidates: every relevant document in the batch (in-batch negatives) plus mined hard ones.
            candidates, inverse = torch.unique(torch.cat([cols, negatives.flatten()]), return_inverse=True)
            cols = inverse[: len(cols)]
            logits = adapted @ self.docs[candidates].T * inv_tau
        lse = torch.logsumexp(logits, dim=1)
        pair_loss = lse[rows] - logits[rows, cols]
        loss = (weights * pair_loss).sum() / weights.sum().clamp_min(1e-8)
        if self.settings.identity_weight_decay:
            loss = loss + self.settings.identity_weight_decay * self.adapter.distance_from_identity()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(q))
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.adapter.parameters(), lr=self.settings.learning_rate, weight_decay=0.0)
        total = max(1, self.steps_per_epoch * self.settings.epochs)
        # One warm-up-then-anneal cycle: large early steps, small late ones, so the last epochs refine.
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.settings.learning_rate, total_steps=total, pct_start=0.1
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def monitor_key(settings: TrainingSettings) -> str:
    """The logged name of the monitored validation metric (what `EarlyStopping` watches)."""
    return f"val/{settings.monitor}"


class ValidationCallback(L.Callback):
    """After each epoch: scores the selection queries on the whole store, logs `val/<metric>` for
    `EarlyStopping`, keeps the best weights in memory, and reports progress; stops on cancellation."""

    def __init__(
        self,
        queries: torch.Tensor,
        docs: torch.Tensor,
        relevant: list[set[int]],
        settings: TrainingSettings,
        base: dict[str, float],
        report: Callable[[dict], None],
        should_stop: Callable[[], bool],
    ) -> None:
        self.queries, self.docs, self.relevant = queries, docs, relevant
        self.settings, self.base, self.report, self.should_stop = settings, base, report, should_stop
        self.best_value = -math.inf
        self.best_state: dict | None = None
        self.best_epoch = -1
        self.best_metrics: dict[str, float] = {}
        self.history: list[dict] = []
        self.start = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.should_stop():
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, module) -> None:
        metrics = evaluate_queries(
            self.queries,
            self.docs,
            self.relevant,
            module.adapter,
            self.settings.cutoffs(),
            self.settings.inference_batch_size,
        )
        epoch = trainer.current_epoch
        value = metrics[self.settings.monitor]
        module.log(monitor_key(self.settings), value, on_epoch=True, batch_size=len(self.queries))
        self.history.append({"epoch": epoch, **metrics, "tau": float(module.adapter.tau.detach())})
        if value > self.best_value:
            self.best_value, self.best_epoch, self.best_metrics = value, epoch, metrics
            self.best_state = copy.deepcopy(module.adapter.state_dict())
        elapsed = time.monotonic() - self.start
        self.report(
            {
                "epoch": epoch + 1,
                "epochs": self.settings.epochs,
                "eta_seconds": elapsed / (epoch + 1) * (self.settings.epochs - epoch - 1),
                "val": metrics,
                "best_val": self.best_metrics,
                "base_val": self.base,
            }
        )
        if self.should_stop():
            trainer.should_stop = True


def calibrate_temperature(queries: torch.Tensor, docs: torch.Tensor, data: RelevanceData, sample: int = 2000) -> float:
    """The softmax temperature that best fits the *untrained* (identity) model on a sample of training pairs.

    Starting from the calibrated scale, the first gradient steps on W go to ranking, not to fixing a badly
    chosen scale (with a fixed tau=0.05 the GloVe base *degrades* in the first epoch; calibrated, it improves).
    """
    idx = np.arange(min(sample, len(data)))
    sub = data.subset(idx)
    with torch.no_grad():
        sims = F.normalize(queries[idx], dim=-1) @ docs.T
        rows = np.repeat(np.arange(len(sub)), np.diff(sub.offsets))
        rows_t, cols_t = torch.from_numpy(rows), torch.from_numpy(sub.doc_rows)
        w = torch.from_numpy(sub.weights)
        best_tau, best_loss = 0.05, math.inf
        for log_tau in np.linspace(math.log(1e-3), math.log(1.0), 40):
            logits = sims / math.exp(log_tau)
            loss = float(
                (w * (torch.logsumexp(logits, 1)[rows_t] - logits[rows_t, cols_t])).sum() / w.sum().clamp_min(1e-8)
            )
            if loss < best_loss:
                best_tau, best_loss = math.exp(log_tau), loss
    return best_tau
