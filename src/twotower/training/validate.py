"""`validate_config(cfg)`: refuse a training config that would fail late or train on the wrong thing.

Called at the top of `train()`, before any data is read, so `trainer.max_epochs=abc` fails in a second with
"trainer.max_epochs must be a whole number, got 'abc'" instead of after minutes of data preparation.
Every message names the setting as it is written on the command line.
"""

from __future__ import annotations

import math
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from twotower.conf import CONF_DIR


def validate_config(cfg: DictConfig) -> None:
    """Raise ValueError naming the first setting that is out of range or of the wrong type."""
    _whole(cfg, "trainer.max_epochs", minimum=1, allow_none=True, also=(-1,))  # Lightning: -1 or null, no limit
    _whole(cfg, "data.batch_size", minimum=1)
    _whole(
        cfg,
        "data.prepare.num_negatives",
        minimum=0 if _in_batch_loss(cfg) else 1,
        why=None if _in_batch_loss(cfg) else "(0 is allowed only with loss=contrastive and loss.in_batch=true)",
    )
    _whole(cfg, "eval_max_queries", minimum=1, allow_none=True, none_means="every judged query")
    subsample = _number(cfg, "data.prepare.subsample")
    if subsample is not None and not 0 < subsample <= 1:
        raise ValueError(
            f"data.prepare.subsample must be in (0, 1] (the share of training queries used), got {subsample!r}"
        )
    lr = _number(cfg, "optim.lr")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"optim.lr must be a finite number > 0, got {lr!r}")
    _negatives(cfg)


def _negatives(cfg: DictConfig) -> None:
    """The negative source builds (a source checks its own settings; building one does no data work)."""
    negatives = _get(cfg, "data.prepare.negatives")
    if isinstance(negatives, str):  # the way sources were chosen before they were a config group
        names = sorted(p.stem for p in (CONF_DIR / "negatives").glob("*.yaml"))
        raise ValueError(
            f"data.prepare.negatives={negatives} names no source: choose one with negatives=NAME "
            f"({', '.join(names)}), e.g. negatives={negatives}"
        )
    if isinstance(negatives, DictConfig) and "_target_" in negatives:
        try:
            instantiate(negatives)
        except InstantiationException as exc:
            if isinstance(exc.__cause__, ValueError):
                raise exc.__cause__ from None
            raise


_MISSING = object()


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)


def _in_batch_loss(cfg: DictConfig) -> bool:
    target = str(_get(cfg, "loss._target_") or "")
    return target.endswith("ContrastiveLoss") and bool(_get(cfg, "loss.in_batch"))


def _whole(
    cfg: DictConfig,
    key: str,
    minimum: int,
    allow_none: bool = False,
    why: str | None = None,
    none_means: str = "no limit",
    also: tuple[int, ...] = (),
) -> None:
    value = _get(cfg, key)
    if value is _MISSING:
        return
    if value is None:
        if allow_none:
            return
        raise ValueError(f"{key} must be a whole number >= {minimum}, got null")
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{key} must be a whole number, got {value!r}")
    if value < minimum and value not in also:
        hint = "".join(f" or {a}" for a in also) + (f" or null for {none_means}" if allow_none else "")
        raise ValueError(f"{key} must be >= {minimum}{hint}, got {value}" + (f" {why}" if why else ""))


def _number(cfg: DictConfig, key: str) -> float | None:
    value = _get(cfg, key)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
