"""Training a query adapter from relevance pairs, in Lightning, against the store's frozen documents.

The pieces live by idea: settings (`settings.py`), data (`data.py`), the objective and the per-epoch
validation (`module.py`), the acceptance test (`acceptance.py`). This module runs them: it splits the
queries, picks the negatives and temperature, fits with Lightning's `EarlyStopping` on the monitored
validation metric, restores the best epoch's weights and decides whether the model is served.

Stopping: validation queries are ranked against the whole store after each epoch; early stopping and the
kept weights follow `monitor` (recall@10 by default). A model is *accepted* only if it beats the base
(identity adapter = plain search) on that split; a rejected model is kept but never used by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from twotower.deep_memory.acceptance import judge
from twotower.deep_memory.adapter import QueryAdapter
from twotower.deep_memory.data import RelevanceData, collate, mine_hard_negatives, split_sizes
from twotower.deep_memory.evaluation import evaluate_queries
from twotower.deep_memory.module import DeepMemoryModule, ValidationCallback, calibrate_temperature, monitor_key
from twotower.deep_memory.settings import TrainingSettings, build_adapter

__all__ = [
    "RelevanceData",
    "TrainOutcome",
    "TrainingSettings",
    "calibrate_temperature",
    "evaluate_queries",
    "train_adapter",
]


@dataclass
class TrainOutcome:
    adapter: QueryAdapter
    accepted: bool
    reason: str
    base_val: dict[str, float]  # plain search on the check half of the validation split
    best_val: dict[str, float]  # the kept adapter on the same queries
    val_gain_z: float  # paired t statistic (mean gain / its standard error) of the monitored metric, check half
    val_gain_p: float  # its one-sided p-value
    best_epoch: int
    epochs_run: int
    history: list[dict]  # per epoch, on the selection half
    train_seconds: float
    n_train: int
    n_val: int
    negatives: str
    temperature_init: float
    cancelled: bool = False

    def summary(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "adapter"}
        out["adapter"] = self.adapter.config()
        return out


def train_adapter(
    data: RelevanceData,
    docs: np.ndarray,
    settings: TrainingSettings,
    report: Callable[[dict], None] = lambda progress: None,
    should_stop: Callable[[], bool] = lambda: False,
    progress_bar: bool = False,
) -> TrainOutcome:
    """Fit an adapter on `data` (query embeddings + relevant store rows) against the frozen `docs`.

    `docs` must be the store's search matrix (unit rows). The validation split is halved: the selection
    half picks the epoch (early stopping), the check half, never used for any choice, measures the gain
    that decides acceptance, so the reported validation gain is not inflated by the choice of epoch.
    `report` is called after each epoch with progress; `should_stop` is polled every batch (cancellation).
    Named steps: split the data, choose negatives and temperature, fit, judge on the check half.
    """
    settings.validate()
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    L.seed_everything(settings.seed, verbose=False)
    t0 = time.monotonic()
    select, check, train, n_val = _split(data, settings)
    docs_t = torch.tensor(np.asarray(docs), dtype=torch.float32)  # a copy: the store's array may be read-only
    negatives, hard, tau = _negatives_and_temperature(train, docs, docs_t, settings)
    adapter = build_adapter(settings.adapter, dim=docs.shape[1], temperature=tau)
    watcher = _fit(adapter, train, hard, select, docs_t, settings, negatives, report, should_stop, progress_bar)
    cancelled = should_stop()
    if watcher.best_state is not None:
        adapter.load_state_dict(watcher.best_state)
    adapter.eval()
    ks, batch = settings.cutoffs(), settings.inference_batch_size
    check_q, check_rel = torch.from_numpy(check.queries), check.qrels()
    base_check = evaluate_queries(check_q, docs_t, check_rel, None, ks, batch, per_query=True)
    best_check = evaluate_queries(check_q, docs_t, check_rel, adapter, ks, batch, per_query=True)
    accepted, reason, t, p = judge(base_check, best_check, settings)
    return TrainOutcome(
        adapter=adapter,
        accepted=accepted and not cancelled,
        reason="cancelled" if cancelled else reason,
        base_val={k: float(v.mean()) for k, v in base_check.items()},
        best_val={k: float(v.mean()) for k, v in best_check.items()},
        val_gain_z=t,
        val_gain_p=p,
        best_epoch=watcher.best_epoch + 1,
        epochs_run=len(watcher.history),
        history=watcher.history,
        train_seconds=time.monotonic() - t0,
        n_train=len(train),
        n_val=n_val,
        negatives=negatives,
        temperature_init=tau,
        cancelled=cancelled,
    )


def _split(data: RelevanceData, settings: TrainingSettings) -> tuple:
    """(selection half, check half, training part, validation size) of a seeded permutation."""
    _, n_val = split_sizes(len(data), settings.validation_split)
    perm = np.random.default_rng(settings.seed).permutation(len(data))
    n_select = n_val // 2
    return data.subset(perm[:n_select]), data.subset(perm[n_select:n_val]), data.subset(perm[n_val:]), n_val


def _negatives_and_temperature(train: RelevanceData, docs: np.ndarray, docs_t: torch.Tensor, settings) -> tuple:
    """The negatives (`all` rows in a full softmax for a small store, else `mined` hard ones), the mined
    rows, and the softmax temperature (calibrated on the training queries when `auto`)."""
    negatives = settings.negatives
    if negatives == "auto":
        negatives = "all" if len(docs) <= settings.max_full_softmax_docs else "mined"
    hard = mine_hard_negatives(train.queries, docs, train, settings.hard_negatives) if negatives == "mined" else None
    if settings.temperature == "auto":
        tau = calibrate_temperature(torch.from_numpy(train.queries), docs_t, train)
    else:
        tau = float(settings.temperature)
    return negatives, hard, tau


def _fit(adapter, train, hard, select, docs_t, settings, negatives, report, should_stop, progress_bar):
    """Lightning fits the adapter; the returned watcher holds the best epoch on the selection half."""
    module = DeepMemoryModule(adapter, docs_t, settings, full_softmax=negatives == "all")
    loader = DataLoader(
        list(range(len(train))),
        batch_size=settings.batch_size,
        shuffle=True,
        collate_fn=collate(train, hard),
        generator=torch.Generator().manual_seed(settings.seed),
    )
    module.steps_per_epoch = len(loader)
    ks, batch = settings.cutoffs(), settings.inference_batch_size
    select_q, select_rel = torch.from_numpy(select.queries), select.qrels()
    base_select = evaluate_queries(select_q, docs_t, select_rel, None, ks, batch)
    watcher = ValidationCallback(select_q, docs_t, select_rel, settings, base_select, report, should_stop)
    # The watcher logs the monitored metric first; EarlyStopping, a monitoring callback, runs after it.
    stopper = EarlyStopping(
        monitor_key(settings),
        mode="max",
        patience=settings.early_stopping_patience,
        check_on_train_epoch_end=True,
        verbose=False,
    )
    callbacks: list[L.Callback] = [watcher, stopper]
    if progress_bar:
        callbacks.append(L.pytorch.callbacks.RichProgressBar())
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=settings.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress_bar,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    try:
        trainer.fit(module, train_dataloaders=loader)
    except SIGTERMException:
        pass  # Lightning turns SIGTERM (how `cancel` reaches a worker) into this; the best weights are kept.
    return watcher
