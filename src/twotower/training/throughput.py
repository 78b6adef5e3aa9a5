"""A callback that measures training throughput and how long the accelerator waits for data."""

from __future__ import annotations

import time

import lightning as L
import torch


class Throughput(L.Callback):
    """Triplets per second over training steps, and the share of wall time spent between a step's end and
    the next step's start (fetching and collating the batch): the time a GPU sits idle waiting on data.
    The first `warmup` steps (allocation, cuDNN autotuning, caches) are left out."""

    def __init__(self, warmup: int = 10) -> None:
        self.warmup = warmup
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        self.triplets = 0
        self.compute_s = 0.0
        self.wait_s = 0.0
        self._batch_start: float | None = None
        self._batch_end: float | None = None

    def _now(self, trainer: L.Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()  # kernels are asynchronous: time the work, not its launch
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = self._now(trainer)
        if self._batch_end is not None and self.steps >= self.warmup:
            self.wait_s += now - self._batch_end
        self._batch_start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = self._now(trainer)
        if self.steps >= self.warmup:
            self.compute_s += now - self._batch_start
            self.triplets += batch_size(batch)
        self.steps += 1
        self._batch_end = now

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._batch_end = None  # evaluation between epochs is not data wait

    @property
    def summary(self) -> dict[str, float]:
        total = self.compute_s + self.wait_s
        return {
            "steps_measured": max(0, self.steps - self.warmup),
            "triplets_per_s": self.triplets / total if total else float("nan"),
            "data_wait_fraction": self.wait_s / total if total else float("nan"),
        }


def batch_size(batch: dict) -> int:
    """Rows in a collated batch: the first dimension of any of the query's feature tensors."""
    return int(next(iter(batch["query"].values())).shape[0])
