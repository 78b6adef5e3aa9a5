"""`validate_config(cfg)`: refuse a training config that would fail late or train on the wrong thing.

Called at the top of `train()`, before any data is read, so `trainer.max_epochs=abc` fails in a second with
"trainer.max_epochs must be a whole number, got 'abc'" instead of after minutes of data preparation.
Every message names the setting as it is written on the command line. The numeric settings and their ranges
are one table, `SETTINGS`; `python -m twotower.training.validate` prints it as the markdown of
docs/settings.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from twotower.conf import CONF_DIR


@dataclass(frozen=True)
class Setting:
    """A numeric setting and its range: `whole` numbers or any finite `number`; `low`/`high` bounds (`None`:
    unbounded), `open_low`/`open_high` when the bound itself is excluded; `also` other values accepted, and
    `none` what null means (`None`: null is refused)."""

    key: str
    what: str
    whole: bool = True
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    also: tuple[int, ...] = ()
    none: str | None = None

    def range(self) -> str:
        """The allowed values in words: `>= 1 or -1 or null`, `in (0, 1]`, `> 0`."""
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.open_low else '['}{_n(self.low)}, {_n(self.high)}{')' if self.open_high else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.open_low else '>='} {_n(self.low)}"
        elif self.high is not None:
            text = f"{'<' if self.open_high else '<='} {_n(self.high)}"
        else:
            text = "any"
        return text + "".join(f" or {a}" for a in self.also) + (" or null" if self.none else "")

    def check(self, value: Any) -> None:
        """Raise ValueError naming the setting if `value` is of the wrong type or out of range."""
        if value is None:
            if self.none is None:
                raise ValueError(
                    f"{self.key} must be {'a whole number' if self.whole else 'a number'} {self.range()}, got null"
                )
            return
        if isinstance(value, bool):
            raise ValueError(f"{self.key} must be {'a whole number' if self.whole else 'a number'}, got {value!r}")
        if self.whole:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise ValueError(f"{self.key} must be a whole number, got {value!r}")
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{self.key} must be a number, got {value!r}") from None
        if value in self.also:
            return
        ok = (self.whole or math.isfinite(value)) and not (
            (self.low is not None and (value < self.low or (self.open_low and value == self.low)))
            or (self.high is not None and (value > self.high or (self.open_high and value == self.high)))
        )
        if not ok:
            prefix = "a finite number " if not self.whole and self.high is None else ""
            raise ValueError(f"{self.key} must be {prefix}{self.range()}, got {value!r} ({self.what})")


def _n(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


SETTINGS: tuple[Setting, ...] = (
    Setting("trainer.max_epochs", "epochs to train; -1 or null: no limit", low=1, also=(-1,), none="no limit"),
    Setting("trainer.max_steps", "optimizer steps to train; -1: no limit", low=1, also=(-1,)),
    Setting("trainer.accumulate_grad_batches", "batches per optimizer step", low=1),
    Setting("trainer.log_every_n_steps", "steps between logged rows", low=1),
    Setting("trainer.gradient_clip_val", "gradient norm clip; 0 or null: none", whole=False, low=0, none="none"),
    Setting(
        "trainer.limit_train_batches",
        "batches (a whole number) or share of an epoch",
        whole=False,
        low=0,
        open_low=True,
        none="the whole epoch",
    ),
    Setting("data.batch_size", "queries per batch", low=1),
    Setting("data.num_workers", "data loader processes", low=0),
    Setting("data.shuffle_buffer", "rows shuffled together; 0: no shuffling", low=0),
    Setting("data.refresh_every", "epochs between re-mining dense negatives; 0: never", low=0),
    Setting("data.prepare.num_negatives", "hard negatives per query; 0 needs an in-batch loss", low=0),
    Setting("data.prepare.subsample", "the share of training queries used", whole=False, low=0, high=1, open_low=True),
    Setting("data.prepare.shard_rows", "rows per parquet shard", low=1),
    Setting("data.prepare.row_group_rows", "rows per parquet row group", low=1),
    Setting("model.query_max_length", "tokens kept of a query", low=1),
    Setting("model.doc_max_length", "tokens kept of a passage", low=1),
    Setting("model.tower.output_dim", "vector width; 0 for a transformer: the backbone's", low=0),
    Setting("model.tower.hidden_size", "hidden width of the tower", low=0),
    Setting("model.tower.num_layers", "recurrent layers", low=1),
    Setting("model.tower.dropout", "dropout probability", whole=False, low=0, high=1, open_high=True),
    Setting("optim.lr", "learning rate", whole=False, low=0, open_low=True),
    Setting("optim.weight_decay", "AdamW weight decay", whole=False, low=0),
    Setting("scheduler.warmup_ratio", "share of steps spent warming up", whole=False, low=0, high=1),
    Setting("loss.temperature", "softmax temperature", whole=False, low=0, open_low=True),
    Setting("eval_max_queries", "dev queries evaluated", low=1, none="every judged query"),
    Setting("patience", "epochs without improvement before stopping", low=0),
    Setting("seed", "random seed", low=0, high=2**32 - 1),
)
"""Every numeric setting `validate_config` checks, and its range: the one table (rendered in docs/settings.md)."""


def validate_config(cfg: DictConfig) -> None:
    """Raise ValueError naming the first setting that is out of range or of the wrong type."""
    for setting in SETTINGS:
        value = _get(cfg, setting.key)
        if value is not _MISSING:
            setting.check(value)
    if _get(cfg, "data.prepare.num_negatives") == 0 and not _in_batch_loss(cfg):
        raise ValueError(
            "data.prepare.num_negatives must be >= 1, got 0 (0 is allowed only with loss=contrastive and "
            "loss.in_batch=true)"
        )
    _negatives(cfg)


def settings_markdown() -> str:
    """`SETTINGS` as a markdown table: setting, allowed values, what it is."""
    rows = [f"| `{s.key}` | {'whole number' if s.whole else 'number'} {s.range()} | {s.what} |" for s in SETTINGS]
    return "| setting | allowed | meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n"


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


if __name__ == "__main__":
    print(settings_markdown(), end="")
