"""Evaluate checkpoints (and baselines) on full-corpus retrieval and say which differences are real:
`python evaluate.py ckpt=A [ckpt=B ...] [baselines=[bm25,minilm]] [compare_to=bm25]`.

Beside `metrics.json` the output folder gets, per system, `systems/<name>/run.trec` (top 100 per query) and
`per_query.json`, and with two or more systems `comparison.json` / `comparison.md`: each system against
`compare_to` (default: the first system), per metric, with a paired test and a bootstrap confidence interval
(docs/significance.md).

A mistake the user can fix (a missing file, a bad setting) prints one line, `error: <Type>: <message>`, and
exits 1; the full traceback goes to `error.txt` in the output folder (`HYDRA_FULL_ERROR=1` shows it instead).
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from twotower.errors import user_errors
from twotower.evaluation.baselines import build_baselines
from twotower.evaluation.comparison import print_comparison, write_comparison
from twotower.evaluation.evaluate import (
    check_settings,
    checkpoint_list,
    compare_systems,
    display_name,
    evaluate,
    load_eval_split,
    print_table,
    save_systems,
    write_metrics,
)
from twotower.evaluation.significance import settings_from


@hydra.main(version_base="1.3", config_path="pkg://twotower.conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with user_errors(trace_dir=out_dir):
        baselines = build_baselines(cfg.baselines)  # baselines=[bm25,minilm]: configs of conf/baselines/
        ckpts = checkpoint_list(cfg.ckpt, HydraConfig.get().overrides.task)  # ckpt=A ckpt=B or ckpt=[A,B]
        check_settings(ckpts, baselines, cfg.max_queries, cfg.k)
        settings = settings_from(OmegaConf.to_container(cfg.significance))
        split = load_eval_split(cfg.data.dir, cfg.data.split, cfg.data.collection, cfg.data.queries, cfg.data.qrels)
        results = evaluate(split, ckpts, baselines, cfg.max_queries, cfg.k, cfg.device)
        print_table(results)
        out = write_metrics(out_dir / "metrics.json", results)
        per_query = save_systems(out_dir, results, split)
        print(f"metrics written to {out}; runs and per-query values in {out_dir / 'systems'}")
        rows = compare_systems(per_query, cfg.compare_to, settings)
        if rows:
            print_comparison(rows, settings, name=display_name)
            written = write_comparison(out_dir, rows, settings, name=display_name)
            print(f"comparison written to {', '.join(map(str, written))}")


if __name__ == "__main__":
    main()
