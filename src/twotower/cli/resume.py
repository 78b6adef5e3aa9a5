"""`twotower resume RUN_DIR [overrides]`: resume a training run in place, under the config it was started with."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a training run folder (outputs/runs/<run>)")
    parser.add_argument("overrides", nargs="*", help="only trainer.max_epochs and the like, e.g. trainer.max_epochs=6")


def run(args: argparse.Namespace) -> int:
    from twotower.training.resume import resume_config
    from twotower.training.run import train

    result = train(resume_config(args.run_dir, args.overrides))
    print(f"resumed {result.run_dir}: best {result.best}")
    return 0
