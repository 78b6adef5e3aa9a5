"""Train from Python (notebooks, scripts) with the same configs as `train.py`, without the command line.

from twotower import api
result = api.train(overrides=["model=gru", "trainer.max_epochs=1"])
result.best["mrr@10"], result.run_dir, result.encoder().encode_queries(["cooking an egg"])
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from twotower.conf import CONF_DIR
from twotower.conf.aliases import upgrade_overrides
from twotower.training.run import TrainResult
from twotower.training.run import train as _train


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    overrides = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            overrides += _flatten(value, f"{name}.")
        elif isinstance(value, (list, tuple)):
            overrides.append(f"{name}=[{','.join(map(str, value))}]")
        else:
            overrides.append(f"{name}={'null' if value is None else value}")
    return overrides


def compose_config(
    overrides: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    config_name: str = "train",
    config_dir: str | Path = CONF_DIR,
) -> DictConfig:
    """The config `train.py` would run with these overrides; `config` is a nested dict of overrides."""
    overrides = upgrade_overrides(list(overrides) + _flatten(config or {}))
    run_dir = Path(run_dir or Path("outputs/api") / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(Path(config_dir).resolve()), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides + [f"paths.run_dir={run_dir}"], return_hydra_config=True)
    # `${hydra:...}` interpolations (run names) read this singleton, as under `@hydra.main`.
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def train(
    overrides: Sequence[str] = (), config: Mapping[str, Any] | None = None, run_dir: str | Path | None = None
) -> TrainResult:
    """Train with Hydra overrides (`["model=gru", "loss=triplet"]`) and/or a dict (`{"trainer": {"max_epochs": 1}}`)."""
    return _train(compose_config(overrides, config, run_dir))
