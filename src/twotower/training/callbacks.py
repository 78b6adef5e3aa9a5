"""Lightning callbacks: full-corpus retrieval evaluation each epoch, and seed-format `.pt` checkpoints."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from twotower.evaluation.retrieval import evaluate_encoder
from twotower.io.atomic import write_json
from twotower.models.checkpoint import model_fields, save_checkpoint

log = logging.getLogger(__name__)

# The per-epoch fields of training_stats, as the seed project kept them.
SUMMARY = ("mrr", "mrr@10", "recall@10", "ndcg@10", "map")


class RetrievalEvaluation(L.Callback):
    """At the end of every `every_n_epochs`-th training epoch: encode the whole eval collection, search it
    with faiss for every judged eval query (at most `max_queries`), and log all metrics as `eval/<name>`.

    Under DDP each rank encodes its share of the corpus chunks and the top-k lists are merged across ranks.
    `per_epoch="candidates"` makes the epochs before the last a cheap check (each query scored against its
    candidate list, e.g. the BM25 run of the split) and keeps the full-corpus evaluation for the last epoch."""

    def __init__(
        self, max_queries: int | None = None, k: int = 100, every_n_epochs: int = 1, per_epoch: str = "full"
    ) -> None:
        if per_epoch not in ("full", "candidates"):
            raise ValueError(f"callbacks.retrieval_evaluation.per_epoch must be full or candidates, got {per_epoch!r}")
        self.max_queries = max_queries
        self.k = k
        self.every_n_epochs = every_n_epochs
        self.per_epoch = per_epoch
        self.history: list[dict[str, Any]] = []
        self.last_result = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs and not trainer.should_stop:
            return
        split = trainer.datamodule.eval_split
        if split is None:
            return
        last = trainer.should_stop or trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        candidates = None
        if self.per_epoch == "candidates" and not last:
            if not split.candidates:
                raise ValueError("per_epoch=candidates needs candidate lists for the eval split (a run file)")
            candidates = split.candidates
        world = trainer.world_size
        started = time.perf_counter()
        result = evaluate_encoder(
            pl_module.encoder(),
            split,
            self.max_queries,
            self.k,
            candidates=candidates,
            rank=trainer.global_rank,
            world_size=world,
            all_gather=trainer.strategy.all_gather if world > 1 else None,
        )
        seconds = time.perf_counter() - started
        metrics = trainer.callback_metrics
        entry = {
            "epoch": trainer.current_epoch,
            "train_loss": float(metrics.get("train/loss_epoch", float("nan"))),
            "train_accuracy": float(metrics.get("train/accuracy", float("nan"))),
            "learning_rate": float(trainer.optimizers[0].param_groups[0]["lr"]),
            "eval_seconds": seconds,
            "metrics": result.metrics,
        }
        self.history.append(entry)
        self.last_result = result  # for callbacks that show what was retrieved (SampleRetrievals)
        # Every rank computes the same numbers, so sync_dist is not needed; rank 0 writes them.
        pl_module.log_dict({f"eval/{k}": v for k, v in result.metrics.items()}, on_epoch=True, sync_dist=False)
        pl_module.log("eval/seconds", seconds, on_epoch=True)
        log.info(
            "epoch %d: %s (%.1fs, %d queries)",
            trainer.current_epoch,
            ", ".join(f"{k}={result.metrics[k]:.4f}" for k in SUMMARY),
            seconds,
            result.num_queries,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict.get("history", [])


class TwoTowerCheckpoint(L.Callback):
    """Writes `best.pt` (by `monitor`) and `last.pt` atomically after each evaluation, in the seed format,
    and `metrics.json` beside them when training ends."""

    def __init__(self, dirpath: str, monitor: str = "mrr@10", mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be max or min, got {mode!r}")
        self.dirpath = Path(dirpath)
        self.monitor = monitor
        self.mode = mode
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}

    def _evaluation(self, trainer: L.Trainer) -> RetrievalEvaluation:
        found = [c for c in trainer.callbacks if isinstance(c, RetrievalEvaluation)]
        if not found:
            raise RuntimeError("TwoTowerCheckpoint needs a RetrievalEvaluation callback before it")
        return found[0]

    def _better(self, value: float) -> bool:
        if not self.best_metrics:
            return True
        best = self.best_metrics[self.monitor]
        return value > best if self.mode == "max" else value < best

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        history = self._evaluation(trainer).history
        if not history or history[-1]["epoch"] != trainer.current_epoch:
            return
        latest = history[-1]
        if self.monitor not in latest["metrics"]:
            raise KeyError(f"monitor {self.monitor!r} is not a metric; choose one of {sorted(latest['metrics'])}")
        if self._better(latest["metrics"][self.monitor]):
            self.best_epoch, self.best_metrics = latest["epoch"], dict(latest["metrics"])
        if trainer.is_global_zero:
            payload = self._payload(trainer, pl_module, history)
            save_checkpoint(self.dirpath / "last.pt", payload)
            if self.best_epoch == latest["epoch"]:
                save_checkpoint(self.dirpath / "best.pt", payload)

    def _payload(self, trainer: L.Trainer, pl_module: L.LightningModule, history: list[dict]) -> dict[str, Any]:
        return {
            **model_fields(pl_module.model, pl_module.model_config),
            "training_stats": {
                "config": pl_module.run_config,
                "training_stats": [
                    {
                        "epoch": h["epoch"],
                        "train_loss": h["train_loss"],
                        "train_accuracy": h["train_accuracy"],
                        "learning_rate": h["learning_rate"],
                        **{f"eval_{k}": h["metrics"][k] for k in SUMMARY},
                    }
                    for h in history
                ],
                "evaluation_stats": [{"epoch": h["epoch"], **h["metrics"]} for h in history],
                "best_metrics": self.best_metrics,
                "best_epoch": self.best_epoch,
            },
            "epoch": history[-1]["epoch"],
            "eval_results": history[-1]["metrics"],
            "wandb_run_id": wandb_run_id(trainer),
        }

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        history = self._evaluation(trainer).history
        summary = {
            "monitor": self.monitor,
            "best_epoch": self.best_epoch,
            "best": self.best_metrics,
            "last": history[-1]["metrics"] if history else {},
            "epochs": [{"epoch": h["epoch"], "train_loss": h["train_loss"], **h["metrics"]} for h in history],
            "best_checkpoint": str(self.dirpath / "best.pt"),
        }
        write_json(self.dirpath.parent / "metrics.json", summary)

    def state_dict(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_metrics": self.best_metrics}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_epoch = state_dict.get("best_epoch")
        self.best_metrics = state_dict.get("best_metrics", {})


def wandb_run_id(trainer: L.Trainer) -> str | None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.version
    return None
