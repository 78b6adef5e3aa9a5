"""Train a two-tower model: `python train.py model=gru loss=contrastive` (Hydra; see conf/train.yaml)."""

import logging
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from twotower.training.run import train

log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        result = train(cfg)
    except Exception:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # In a sweep one broken configuration must not cost the others: record it and move on. The sweeper
        # sees NaN (Optuna marks the trial failed); `python -m twotower.sweep` lists the failures.
        error = traceback.format_exc()
        Path(cfg.paths.run_dir, "error.txt").write_text(error)
        log.error("job failed, recorded in %s/error.txt:\n%s", cfg.paths.run_dir, error)
        return float("nan")
    # Hydra sweepers (Optuna) optimise what the task function returns.
    return result.best.get(cfg.monitor)


if __name__ == "__main__":
    main()
