"""Evaluate a checkpoint (and baselines) on full-corpus retrieval: `python evaluate.py ckpt=PATH`."""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from twotower.evaluation.evaluate import evaluate, load_eval_split, print_table, write_metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    split = load_eval_split(cfg.data.dir, cfg.data.split, cfg.data.collection, cfg.data.queries, cfg.data.qrels)
    results = evaluate(split, cfg.ckpt, list(cfg.baselines), cfg.max_queries, cfg.k, cfg.device)
    print_table(results)
    out = write_metrics(Path(HydraConfig.get().runtime.output_dir) / "metrics.json", results)
    print(f"metrics written to {out}")


if __name__ == "__main__":
    main()
