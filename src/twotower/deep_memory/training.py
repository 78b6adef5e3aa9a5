"""Training a query adapter from relevance pairs, in Lightning, against the store's frozen documents.

Objective: a softmax over documents with a learned temperature,

    loss(q) = sum_j w_qj * (logsumexp_{d in C} <f(q), d> / tau  -  <f(q), d_j> / tau) / sum_j w_qj
              + lambda * ||f - identity||^2,

where d_j are q's relevant documents with relevance weights w_qj, f(q) is the unit-length adapted query and
C is the candidate set. For stores up to `max_full_softmax_docs` C is *every stored document* (exact: no
false "easy" negatives, no missing hard ones); above that C is the batch's relevant documents (in-batch
negatives) plus hard negatives mined once from the store with the base embeddings.

Stopping: validation queries are ranked against the whole store after each epoch; early stopping and the
kept weights follow `monitor` (recall@10 by default). A model is *accepted* only if it beats the base
(identity adapter = plain search) on that split; a rejected model is kept but never used by default.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from twotower.deep_memory.adapter import QueryAdapter
from twotower.deep_memory.evaluation import per_query_metrics, top_k_indices

CONF_DIR = Path(__file__).resolve().parents[3] / "conf" / "deep_memory"
# Half of the validation queries pick the epoch, the other half judge the model: at least 2 each.
MIN_VALIDATION_QUERIES = 4


@dataclass
class TrainingSettings:
    """Training settings (names as in the LlamaIndex/Deep Lake guide where they exist).

    Defaults live in `conf/deep_memory/default.yaml`; the values here only apply when that file is absent
    (an installed package without the repository's `conf/`).
    """

    batch_size: int = 256
    learning_rate: float = 3e-3
    epochs: int = 12
    validation_split: float = 0.1
    early_stopping_patience: int = 3
    monitor: str = "recall@10"
    min_val_gain: float = 0.0
    min_val_z: float = 1.645
    max_val_drop: float = 0.005
    guard_metrics: list[str] = field(default_factory=lambda: ["recall@1", "recall@10", "mrr@10"])
    identity_weight_decay: float = 0.0
    temperature: Any = "auto"
    negatives: str = "auto"
    hard_negatives: int = 32
    max_full_softmax_docs: int = 200_000
    inference_batch_size: int = 1024
    seed: int = 0
    num_threads: int | None = None
    adapter: dict = field(
        default_factory=lambda: {
            "_target_": "twotower.deep_memory.adapter.QueryAdapter",
            "kind": "mlp",
            "hidden": 512,
            "rank": None,
            "dropout": 0.1,
        }
    )

    @classmethod
    def load(cls, overrides: dict | None = None, config: str | Path | None = None) -> "TrainingSettings":
        """Defaults from the Hydra config `conf/deep_memory/<config or default>.yaml`, then `overrides`."""
        base = OmegaConf.structured(cls)
        path = Path(config) if config and Path(config).suffix else CONF_DIR / f"{config or 'default'}.yaml"
        if path.exists():
            base = OmegaConf.merge(base, OmegaConf.load(path))
        elif config:
            raise FileNotFoundError(f"deep-memory config not found: {path}")
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown deep-memory training setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        merged = OmegaConf.merge(base, OmegaConf.create(overrides))
        settings = cls(**OmegaConf.to_container(merged, resolve=True))
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.batch_size < 1 or self.inference_batch_size < 1:
            raise ValueError("batch_size and inference_batch_size must be positive")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if not 0 < self.validation_split < 1:
            raise ValueError(f"validation_split must be in (0, 1), got {self.validation_split}")
        if self.negatives not in ("auto", "all", "mined"):
            raise ValueError(f"negatives must be 'auto', 'all' or 'mined', got {self.negatives!r}")
        if self.temperature != "auto" and not float(self.temperature) > 0:
            raise ValueError(f"temperature must be 'auto' or positive, got {self.temperature!r}")
        metric_name(self.monitor)
        for name in self.guard_metrics:
            metric_name(name)
        if not isinstance(self.adapter, dict):
            raise ValueError(f"adapter must be a mapping of QueryAdapter settings, got {self.adapter!r}")
        adapter_class(self.adapter)

    def to_dict(self) -> dict:
        return asdict(self)


# The only classes an `adapter._target_` may name. A job's settings.json is read back by the worker process,
# and a config file may come from anywhere: neither can make it import and run anything else.
ADAPTERS: dict[str, type] = {"twotower.deep_memory.adapter.QueryAdapter": QueryAdapter}


def adapter_class(spec: dict, where: str = "adapter") -> type:
    """The allowed class `spec["_target_"]` names (QueryAdapter when absent); anything else is a ValueError."""
    target = spec.get("_target_", "twotower.deep_memory.adapter.QueryAdapter")
    if target not in ADAPTERS:
        raise ValueError(f"{where}._target_ {target!r} is not allowed: a deep-memory adapter is one of "
                         f"{', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[target]


def build_adapter(spec: dict, **kwargs: Any) -> QueryAdapter:
    """`adapter` settings -> the adapter, built from the allow-list only (never `hydra.utils.instantiate`)."""
    spec = dict(spec)
    cls = adapter_class(spec)
    params = {k: v for k, v in spec.items() if not k.startswith("_")}
    try:
        return cls(**params, **kwargs)
    except TypeError as exc:
        raise ValueError(f"adapter settings {params} do not fit {cls.__name__}: {exc}") from None


def metric_name(name: str) -> tuple[str, int]:
    """'recall@10' -> ('recall', 10); raises on names evaluation cannot compute."""
    kind, _, k = name.partition("@")
    if kind not in ("recall", "mrr", "hit_rate", "precision") or not k.isdigit():
        raise ValueError(f"unknown metric {name!r}: use recall@K, mrr@K, hit_rate@K or precision@K")
    return kind, int(k)


@dataclass
class RelevanceData:
    """Queries as embeddings plus their relevant documents as store row indices, in CSR form."""

    queries: np.ndarray  # (n, dim) float32, as the embedding function returned them
    offsets: np.ndarray  # (n + 1,) int64: query i's pairs are [offsets[i], offsets[i + 1])
    doc_rows: np.ndarray  # (pairs,) int64 row indices into the store
    weights: np.ndarray  # (pairs,) float32 relevance in [0, 1]

    def __len__(self) -> int:
        return len(self.queries)

    def relevant(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.doc_rows[lo:hi], self.weights[lo:hi]

    def subset(self, idx: np.ndarray) -> "RelevanceData":
        rows, weights, offsets = [], [], [0]
        for i in idx:
            r, w = self.relevant(int(i))
            rows.append(r)
            weights.append(w)
            offsets.append(offsets[-1] + len(r))
        return RelevanceData(
            self.queries[idx],
            np.asarray(offsets, dtype=np.int64),
            np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64),
            np.concatenate(weights).astype(np.float32) if weights else np.zeros(0, np.float32),
        )

    def qrels(self) -> list[set[int]]:
        """Per query, the rows that count as relevant when scoring (relevance > 0)."""
        return [set(r[w > 0].tolist()) for r, w in (self.relevant(i) for i in range(len(self)))]

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, queries=self.queries, offsets=self.offsets, doc_rows=self.doc_rows, weights=self.weights)

    @classmethod
    def load(cls, path: str | Path) -> "RelevanceData":
        with np.load(path) as z:
            return cls(z["queries"], z["offsets"], z["doc_rows"], z["weights"])


def _collate(data: RelevanceData, hard: np.ndarray | None) -> Callable:
    def collate(batch_idx: list[int]):
        rows, cols, weights = [], [], []
        for r, i in enumerate(batch_idx):
            d, w = data.relevant(i)
            rows.extend([r] * len(d))
            cols.extend(d.tolist())
            weights.extend(w.tolist())
        negatives = torch.from_numpy(hard[batch_idx]) if hard is not None else torch.zeros(0, dtype=torch.long)
        return (
            torch.from_numpy(data.queries[batch_idx]),
            torch.tensor(rows, dtype=torch.long),
            torch.tensor(cols, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float32),
            negatives,
        )

    return collate


def evaluate_queries(
    queries: torch.Tensor,
    docs: torch.Tensor,
    relevant: list[set[int]],
    adapter: QueryAdapter | None = None,
    ks: tuple[int, ...] = (1, 10),
    batch_size: int = 1024,
    per_query: bool = False,
) -> dict:
    """recall@k, mrr@k, hit_rate@k of `queries` (adapted if `adapter`) ranked against every row of `docs`.

    Means, or with `per_query` one array per metric (for paired comparisons).
    """
    with torch.no_grad():
        if adapter is not None:
            was_training = adapter.training
            adapter.eval()
            queries = torch.cat([adapter(queries[s : s + batch_size]) for s in range(0, len(queries), batch_size)])
            adapter.train(was_training)
        top = top_k_indices(queries.numpy(), docs.numpy(), max(ks), batch_size=batch_size)
    values = per_query_metrics(top, relevant, ks)
    return values if per_query else {name: float(v.mean()) for name, v in values.items()}


def split_sizes(n_queries: int, validation_split: float) -> tuple[int, int]:
    """(train, validation) query counts; raises when too few queries are left for either."""
    n_val = int(round(n_queries * validation_split))
    if n_val < MIN_VALIDATION_QUERIES or n_queries - n_val < 1:
        raise ValueError(
            f"{n_queries} queries with validation_split={validation_split} give {n_val} validation queries; "
            f"deep memory needs at least {MIN_VALIDATION_QUERIES} (to choose the epoch and to check the model "
            "against plain search) and at least one training query"
        )
    return n_queries - n_val, n_val


class DeepMemoryModule(L.LightningModule):
    """Lightning wrapper: the adapter learns, the store's document matrix is a frozen, unsaved buffer."""

    def __init__(self, adapter: QueryAdapter, docs: torch.Tensor, settings: TrainingSettings, full_softmax: bool) -> None:
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


class _ValidationCallback(L.Callback):
    """Scores the validation split on the whole store, keeps the best weights, stops early, reports."""

    def __init__(self, val_queries, docs, relevant, settings, base, report, should_stop) -> None:
        self.val_queries, self.docs, self.relevant = val_queries, docs, relevant
        self.settings, self.base, self.report, self.should_stop = settings, base, report, should_stop
        self.best_value = -math.inf
        self.best_state: dict | None = None
        self.best_epoch = -1
        self.best_metrics: dict[str, float] = {}
        self.history: list[dict] = []
        self.bad_epochs = 0
        self.start = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.should_stop():
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, module) -> None:
        ks = tuple(sorted({1, 10} | {metric_name(m)[1] for m in [self.settings.monitor, *self.settings.guard_metrics]}))
        metrics = evaluate_queries(
            self.val_queries, self.docs, self.relevant, module.adapter, ks, self.settings.inference_batch_size
        )
        epoch = trainer.current_epoch
        value = metrics[self.settings.monitor]
        self.history.append({"epoch": epoch, **metrics, "tau": float(module.adapter.tau.detach())})
        if value > self.best_value:
            self.best_value, self.best_epoch, self.best_metrics = value, epoch, metrics
            self.best_state = copy.deepcopy(module.adapter.state_dict())
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.settings.early_stopping_patience:
                trainer.should_stop = True
        elapsed = time.monotonic() - self.start
        remaining = 0 if trainer.should_stop else self.settings.epochs - epoch - 1
        self.report(
            {
                "epoch": epoch + 1,
                "epochs": self.settings.epochs,
                "eta_seconds": elapsed / (epoch + 1) * remaining,
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
            loss = float((w * (torch.logsumexp(logits, 1)[rows_t] - logits[rows_t, cols_t])).sum() / w.sum().clamp_min(1e-8))
            if loss < best_loss:
                best_tau, best_loss = math.exp(log_tau), loss
    return best_tau


def mine_hard_negatives(queries: np.ndarray, docs: np.ndarray, data: RelevanceData, k: int, batch_size: int) -> np.ndarray:
    """Per query, the `k` top base-ranked stored documents that are not among its relevant ones."""
    top = top_k_indices(queries, docs, k + int(np.diff(data.offsets).max(initial=0)), batch_size=batch_size)
    out = np.empty((len(data), k), dtype=np.int64)
    for i in range(len(data)):
        rel = set(data.relevant(i)[0].tolist())
        out[i] = [d for d in top[i] if d not in rel][:k]
    return out


@dataclass
class TrainOutcome:
    adapter: QueryAdapter
    accepted: bool
    reason: str
    base_val: dict[str, float]  # plain search on the check half of the validation split
    best_val: dict[str, float]  # the kept adapter on the same queries
    val_gain_z: float  # paired z statistic of the monitored metric's gain on the check half
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
    """
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    L.seed_everything(settings.seed, verbose=False)
    t0 = time.monotonic()
    _, n_val = split_sizes(len(data), settings.validation_split)
    perm = np.random.default_rng(settings.seed).permutation(len(data))
    n_select = n_val // 2
    select, check, train = (data.subset(perm[:n_select]), data.subset(perm[n_select:n_val]), data.subset(perm[n_val:]))
    docs_t = torch.tensor(np.asarray(docs), dtype=torch.float32)  # a copy: the store's array may be read-only
    ks = tuple(sorted({1, 10} | {metric_name(m)[1] for m in [settings.monitor, *settings.guard_metrics]}))
    select_q, select_rel = torch.from_numpy(select.queries), select.qrels()
    check_q, check_rel = torch.from_numpy(check.queries), check.qrels()
    base_select = evaluate_queries(select_q, docs_t, select_rel, None, ks, settings.inference_batch_size)

    negatives = settings.negatives
    if negatives == "auto":
        negatives = "all" if len(docs) <= settings.max_full_softmax_docs else "mined"
    hard = None
    if negatives == "mined":
        hard = mine_hard_negatives(train.queries, docs, train, settings.hard_negatives, settings.inference_batch_size)

    if settings.temperature == "auto":
        tau = calibrate_temperature(torch.from_numpy(train.queries), docs_t, train)
    else:
        tau = float(settings.temperature)
    adapter = build_adapter(settings.adapter, dim=docs.shape[1], temperature=tau)
    module = DeepMemoryModule(adapter, docs_t, settings, full_softmax=negatives == "all")
    loader = DataLoader(
        list(range(len(train))),
        batch_size=settings.batch_size,
        shuffle=True,
        collate_fn=_collate(train, hard),
        generator=torch.Generator().manual_seed(settings.seed),
    )
    module.steps_per_epoch = len(loader)
    watcher = _ValidationCallback(select_q, docs_t, select_rel, settings, base_select, report, should_stop)
    callbacks: list[L.Callback] = [watcher]
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
    cancelled = should_stop()
    if watcher.best_state is not None:
        adapter.load_state_dict(watcher.best_state)
    adapter.eval()
    base_check = evaluate_queries(check_q, docs_t, check_rel, None, ks, settings.inference_batch_size, per_query=True)
    best_check = evaluate_queries(check_q, docs_t, check_rel, adapter, ks, settings.inference_batch_size, per_query=True)
    accepted, reason, z = judge(base_check, best_check, settings)
    return TrainOutcome(
        adapter=adapter,
        accepted=accepted and not cancelled,
        reason="cancelled" if cancelled else reason,
        base_val={k: float(v.mean()) for k, v in base_check.items()},
        best_val={k: float(v.mean()) for k, v in best_check.items()},
        val_gain_z=z,
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


def paired_z(base: np.ndarray, new: np.ndarray) -> float:
    """Mean per-query gain over its standard error (0 when nothing changed)."""
    diff = np.asarray(new, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    if len(diff) < 2:
        return 0.0
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    if se == 0:
        return 0.0 if diff.mean() == 0 else math.copysign(math.inf, diff.mean())
    return float(diff.mean() / se)


def judge(base: dict[str, np.ndarray], new: dict[str, np.ndarray], settings: TrainingSettings) -> tuple[bool, str, float]:
    """Accept a model only if it beats plain search on held-back validation queries, clearly, and no guard
    metric falls by more than `max_val_drop`. Returns (accepted, why, z of the monitored gain)."""
    m = settings.monitor
    gain = float(new[m].mean() - base[m].mean())
    z = paired_z(base[m], new[m])
    n = len(base[m])
    head = f"validation {m} {base[m].mean():.4f} -> {new[m].mean():.4f} ({gain:+.4f}, z={z:.2f}, {n} queries)"
    if gain <= settings.min_val_gain or z < settings.min_val_z:
        return False, (
            f"{head}: not a clear gain over plain search (needs > {settings.min_val_gain:+.4f} and z >= "
            f"{settings.min_val_z}); the model is kept but not used by default"
        ), z
    for name in settings.guard_metrics:
        drop = float(base[name].mean() - new[name].mean())
        if drop > settings.max_val_drop:
            return False, (
                f"{head}, but {name} fell by {drop:.4f} (> {settings.max_val_drop}); the model is kept but not used by default"
            ), z
    return True, head, z
