"""The `twotower` command: `twotower index`, `twotower search`, `twotower leaderboard`, ...

    twotower index --ckpt outputs/runs/<run>/checkpoints/best.pt \\
        --collection ../shared/data/msmarco-passage/collection.tsv --out outputs/index/msmarco --kind hnsw
    twotower search --index outputs/index/msmarco --query "cooking an egg"
    twotower search --index outputs/index/msmarco --interactive
    twotower search --index outputs/index/msmarco --queries queries.dev.tsv --run-out dev.run --qrels qrels.dev.tsv
    twotower tune-fusion --index outputs/index/msmarco --queries queries.train.tsv --qrels qrels.train.tsv
    twotower search --index outputs/index/msmarco --query "cooking an egg" --mode hybrid
    twotower serve --index outputs/index/msmarco --port 8000
    twotower leaderboard --runs outputs --metric mrr@10 --plot leaderboard.png

Adding a subcommand: write `configure(parser)` (adds arguments; keep heavy imports out of it) and
`run(args) -> int` (exit status) in your module, and add one `Subcommand` line to `SUBCOMMANDS`, naming them
as "module:function" so they are imported only when used. Errors a user can fix (a missing file, a
mismatched index) are printed as one red line, exit status 1; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    configure: str  # "module:function(parser) -> None"
    run: str  # "module:function(args) -> int"


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "index",
        "build an index from a checkpoint and a collection, or add documents to one",
        "twotower.cli.index:configure",
        "twotower.cli.index:run",
    ),
    Subcommand(
        "search",
        "query an index: one query, interactive, or a queries file to a TREC run",
        "twotower.cli.search:configure_search",
        "twotower.cli.search:run_search",
    ),
    Subcommand(
        "tune-fusion",
        "choose an index's hybrid fusion weight on training queries and store it in its manifest",
        "twotower.cli.tune_fusion:configure",
        "twotower.cli.tune_fusion:run",
    ),
    Subcommand(
        "serve",
        "serve an index over HTTP: JSON API, a search page at /, API docs at /docs",
        "twotower.cli.serve:configure",
        "twotower.cli.serve:run",
    ),
    Subcommand(
        "leaderboard",
        "rank the checkpoints of a folder of training runs",
        "twotower.cli.leaderboard:configure_leaderboard",
        "twotower.cli.leaderboard:run_leaderboard",
    ),
    Subcommand(
        "resume",
        "resume a training run in place, under the config it was started with",
        "twotower.cli.resume:configure",
        "twotower.cli.resume:run",
    ),
    Subcommand(
        "export",
        "write a checkpoint as a sentence-transformers model folder",
        "twotower.models.export:configure",
        "twotower.models.export:run",
    ),
    Subcommand(
        "emb-opt",
        "steer query vectors through an index towards what a score likes (Hydra overrides)",
        "twotower.cli:configure_emb_opt",
        "twotower.cli:run_emb_opt",
    ),
    Subcommand(
        "synth",
        "write a synthetic MS MARCO of any size (official formats) made from the real sample",
        "twotower.data.synth:configure",
        "twotower.data.synth:run",
    ),
    Subcommand(
        "redis", "start, stop or check a local Redis 8 server", "twotower.cli.redis:configure", "twotower.cli.redis:run"
    ),
]


def configure_emb_opt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="Hydra overrides for twotower/conf/emb_opt/config.yaml, e.g. strategy=rl iterations=40",
    )


def run_emb_opt(args: argparse.Namespace) -> int:
    from twotower.emb_opt import cli as emb_opt_cli

    # Hydra's entry point reads sys.argv: hand it exactly the overrides.
    sys.argv = ["twotower emb-opt", *args.overrides]
    emb_opt_cli.main()
    return 0


def _resolve(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twotower", description="Two-tower retrieval: index, search, compare.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in SUBCOMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        _resolve(command.configure)(child)
        child.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or bool(os.environ.get("TWOTOWER_DEBUG"))
    try:
        return int(_resolve(args._run)(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug or not _user_error(exc):
            raise
        from rich.console import Console
        from rich.text import Text

        from twotower.errors import user_message

        name, message = user_message(exc)
        message = f"{name}: {message}" if name == "DiskFull" else message

        # A Text, not markup: messages quote ids and paths that may hold [brackets].
        Console(stderr=True, soft_wrap=True).print(Text.assemble(("error: ", "bold red"), str(message)))
        return 1


def _user_error(exc: Exception) -> bool:
    """Errors with a message meant for the user (bad path, bad file, mismatched index), not bugs."""
    from twotower.errors import is_user_error

    return is_user_error(exc)


if __name__ == "__main__":
    sys.exit(main())
