"""Deep Memory's training settings: their defaults (here, and only here), overrides, and checks.

`TrainingSettings.load(overrides, config)` starts from these defaults, merges a Hydra config file from
`twotower/conf/deep_memory/` when one is named (or `default.yaml`, which only overrides), then the per-job overrides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from twotower.conf import CONF_DIR as PACKAGE_CONF
from twotower.deep_memory.adapter import QueryAdapter

CONF_DIR = PACKAGE_CONF / "deep_memory"
ADAPTER = "twotower.deep_memory.adapter.QueryAdapter"


@dataclass
class TrainingSettings:
    """Training settings (names as in the LlamaIndex/Deep Lake guide where they exist); docs/deep_memory.md."""

    batch_size: int = 256
    learning_rate: float = 3e-3
    epochs: int = 12
    validation_split: float = 0.1
    early_stopping_patience: int = 3
    # The validation metric that picks the epoch and decides whether the model beats plain search.
    monitor: str = "recall@10"
    # Accepted only if the monitored gain on held-back queries is above min_val_gain and a one-sided paired
    # t-test (scipy.stats.ttest_rel) of it has p <= max_val_p...
    min_val_gain: float = 0.0
    max_val_p: float = 0.05
    # ...and none of these falls by more than max_val_drop.
    guard_metrics: list[str] = field(default_factory=lambda: ["recall@1", "recall@10", "mrr@10"])
    max_val_drop: float = 0.005
    # lambda * ||adapter - identity||^2 added to the loss.
    identity_weight_decay: float = 0.0
    # "auto": fit the softmax temperature of the untrained model, then learn it; or a fixed starting value.
    temperature: Any = "auto"
    # "all": softmax over every stored document; "mined": in-batch + hard negatives; "auto": all up to
    # max_full_softmax_docs.
    negatives: str = "auto"
    hard_negatives: int = 32
    max_full_softmax_docs: int = 200_000
    inference_batch_size: int = 1024
    seed: int = 0
    num_threads: int | None = None
    # kind: linear | mlp (linear residual plus a one-hidden-layer MLP residual); rank: low-rank W = A B for
    # wide embeddings (null: full rank).
    adapter: dict = field(
        default_factory=lambda: {"_target_": ADAPTER, "kind": "mlp", "hidden": 512, "rank": None, "dropout": 0.1}
    )

    @classmethod
    def load(cls, overrides: dict | None = None, config: str | Path | None = None) -> TrainingSettings:
        """These defaults, then the Hydra config `twotower/conf/deep_memory/<config or default>.yaml`, then
        `overrides`."""
        base = OmegaConf.structured(cls)
        path = Path(config) if config and Path(config).suffix else CONF_DIR / f"{config or 'default'}.yaml"
        if path.exists():
            base = OmegaConf.merge(base, OmegaConf.load(path) or {})
        elif config:
            raise FileNotFoundError(f"deep-memory config not found: {path}")
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown deep-memory training setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
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
        if not 0 < self.max_val_p <= 1:
            raise ValueError(f"max_val_p must be in (0, 1], got {self.max_val_p}")
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

    def cutoffs(self) -> tuple[int, ...]:
        """The ranks every evaluation needs: 1, 10 and those of `monitor` and `guard_metrics`."""
        return tuple(sorted({1, 10} | {metric_name(m)[1] for m in [self.monitor, *self.guard_metrics]}))


# The only classes an `adapter._target_` may name. A job's settings.json is read back by the worker process,
# and a config file may come from anywhere: neither can make it import and run anything else.
ADAPTERS: dict[str, type] = {ADAPTER: QueryAdapter}


def adapter_class(spec: dict, where: str = "adapter") -> type:
    """The allowed class `spec["_target_"]` names (QueryAdapter when absent); anything else is a ValueError."""
    target = spec.get("_target_", ADAPTER)
    if target not in ADAPTERS:
        raise ValueError(
            f"{where}._target_ {target!r} is not allowed: a deep-memory adapter is one of {', '.join(sorted(ADAPTERS))}"
        )
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
    if kind not in ("recall", "mrr", "hit_rate", "precision") or not k.isdigit() or int(k) < 1:
        raise ValueError(f"unknown metric {name!r}: use recall@K, mrr@K, hit_rate@K or precision@K")
    return kind, int(k)
