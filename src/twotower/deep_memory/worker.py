"""Entry point of a deep-memory training process: `python -m twotower.deep_memory.worker STORE JOB_ID`.

Kept apart from jobs.py so that running it does not re-import a module the package already loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twotower.deep_memory.jobs import run_worker


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m twotower.deep_memory.worker STORE_PATH JOB_ID", file=sys.stderr)
        return 2
    return run_worker(Path(argv[0]), argv[1])


if __name__ == "__main__":
    sys.exit(main())
