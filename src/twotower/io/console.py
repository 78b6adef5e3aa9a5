"""The Rich console every command prints through."""

from __future__ import annotations

import os
import sys

from rich.console import Console


def console(stderr: bool = False, **kwargs) -> Console:
    """A Rich console; off a terminal (logs, CI, pipes) and without $COLUMNS, 160 columns wide instead of
    Rich's 80, which would squeeze metric tables into unreadable wrapped cells."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() or os.environ.get("COLUMNS") else 160, **kwargs)
