"""Train a two-tower model: `python train.py model=gru loss=contrastive` (Hydra; see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from twotower.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    result = train(cfg)
    # Hydra sweepers (Optuna) optimise what the task function returns.
    return result.best.get(cfg.monitor)


if __name__ == "__main__":
    main()
