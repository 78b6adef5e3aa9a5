"""Train a two-tower model: `python train.py model=gru loss=contrastive` (Hydra; see src/twotower/conf/train.yaml).

A mistake the user can fix (a bad setting, a missing file) prints one line, `error: <Type>: <message>`, and
exits 1, with the full traceback in the run folder's `error.txt` (`HYDRA_FULL_ERROR=1` shows it instead).
In a multirun every failing job records `error.txt` and the sweep goes on.
"""

import logging
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from twotower.conf.aliases import upgrade_overrides
from twotower.errors import user_errors
from twotower.io.output import check_run_dir_argument
from twotower.training.run import RUN_FILES, train

log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path="pkg://twotower.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        with user_errors(trace_dir=HydraConfig.get().runtime.output_dir):
            result = train(cfg)
        return result.best.get(cfg.monitor)
    try:
        result = train(cfg)
    except Exception:
        # In a sweep one broken configuration must not cost the others: record it and move on. The sweeper
        # sees NaN (Optuna marks the trial failed); `python -m twotower.reporting.sweep` lists the failures.
        error = traceback.format_exc()
        Path(cfg.paths.run_dir, "error.txt").write_text(error)
        log.error("job failed, recorded in %s/error.txt:\n%s", cfg.paths.run_dir, error)
        return float("nan")
    # Hydra sweepers (Optuna) optimise what the task function returns.
    return result.best.get(cfg.monitor)


if __name__ == "__main__":
    sys.argv[1:] = upgrade_overrides(sys.argv[1:])  # old keys (`negatives.depth=30`) still work
    with user_errors():  # before Hydra writes .hydra/ into a hydra.run.dir that is a user's folder or a run
        check_run_dir_argument(
            sys.argv[1:],
            "train",
            unless=("ckpt_path",),
            own=RUN_FILES,
            replace_own=False,
            hint="resume it with `twotower resume DIR` or choose a new hydra.run.dir",
        )
    main()
