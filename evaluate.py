"""Evaluate a checkpoint (and baselines) on full-corpus retrieval: `python evaluate.py ckpt=PATH`.

A mistake the user can fix (a missing file, a bad setting) prints one line, `error: <Type>: <message>`, and
exits 1; the full traceback goes to `error.txt` in the output folder (`HYDRA_FULL_ERROR=1` shows it instead).
An output folder (`hydra.run.dir=...`) that evaluate did not write is refused unless `overwrite=true`.
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from twotower.errors import user_errors
from twotower.evaluation.baselines import build_baselines
from twotower.evaluation.evaluate import check_settings, evaluate, load_eval_split, print_table, write_metrics
from twotower.io.output import check_run_dir_argument, claim_run_folder

OWN = ("metrics.json", "error.txt")
"""What evaluate.py writes into its output folder."""


@hydra.main(version_base="1.3", config_path="pkg://twotower.conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with user_errors():  # a folder of the user's (hydra.run.dir=...) is refused before anything is written to it
        claim_run_folder(out_dir, "evaluate", cfg.get("overwrite", False), own=OWN)
    with user_errors(trace_dir=out_dir):
        baselines = build_baselines(cfg.baselines)  # baselines=[bm25,minilm]: configs of conf/baselines/
        check_settings(cfg.ckpt, baselines, cfg.max_queries, cfg.k)
        split = load_eval_split(cfg.data.dir, cfg.data.split, cfg.data.collection, cfg.data.queries, cfg.data.qrels)
        results = evaluate(split, cfg.ckpt, baselines, cfg.max_queries, cfg.k, cfg.device)
        print_table(results)
        out = write_metrics(out_dir / "metrics.json", results)
        print(f"metrics written to {out}")


if __name__ == "__main__":
    with user_errors():  # before Hydra writes .hydra/ into a hydra.run.dir that is not ours
        check_run_dir_argument(sys.argv[1:], "evaluate", own=OWN)
    main()
