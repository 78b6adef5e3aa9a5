"""One clear line for a user's mistake, the full traceback for a bug.

    with user_errors(trace_dir=run_dir):     # in an entry point (train.py, evaluate.py)
        run(cfg)

A *user error* is one the message alone lets the user fix: a bad setting, a missing or malformed file, a
damaged checkpoint or index. It is printed as `error: <Type>: <message>` on stderr, the full traceback goes
to the log at DEBUG level and to `<trace_dir>/error.txt`, and the process exits with status 1. Anything else
is a bug and propagates with its traceback. `HYDRA_FULL_ERROR=1` (Hydra's convention) or `TWOTOWER_DEBUG=1`
lets user errors propagate too, for the whole trace on the console.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("twotower")


def full_errors_requested() -> bool:
    """`HYDRA_FULL_ERROR=1` or `TWOTOWER_DEBUG=1`: show tracebacks instead of one-line errors."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or bool(os.environ.get("TWOTOWER_DEBUG"))


def _unwrapped(exc: BaseException) -> BaseException:
    """The error inside Hydra's `InstantiationException` (a constructor named by a config raised it)."""
    try:
        from hydra.errors import InstantiationException
    except ImportError:  # pragma: no cover - hydra is a dependency
        return exc
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


class UserError(Exception):
    """Base of twotower's own errors whose message alone lets the user fix the problem (a setting, a path, a
    file's content). Subsystems derive their errors from it, or from `ValueError` / `FileNotFoundError`;
    this module imports none of them."""


def is_user_error(exc: BaseException) -> bool:
    """Errors with a message meant for the user (a setting, a path, a file's content), not bugs."""
    from omegaconf.errors import OmegaConfBaseException

    exc = _unwrapped(exc)
    return isinstance(exc, (UserError, ValueError, FileNotFoundError, KeyError, OmegaConfBaseException))


def one_line(exc: BaseException) -> str:
    """`error: <Type>: <message>` on one line (a multi-line message, as OmegaConf writes, joined with '; ')."""
    exc = _unwrapped(exc)
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError would repr() its text
    text = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return f"error: {type(exc).__name__}: {text}" if text else f"error: {type(exc).__name__}"


@contextlib.contextmanager
def user_errors(trace_dir: str | os.PathLike | None = None) -> Iterator[None]:
    """Turn a user error raised inside into one line on stderr and exit status 1 (see the module doc)."""
    try:
        yield
    except Exception as exc:
        if full_errors_requested() or not is_user_error(exc):
            raise
        trace = traceback.format_exc()
        log.debug("user error, full traceback:\n%s", trace)
        where = ""
        if trace_dir is not None:
            with contextlib.suppress(OSError):
                path = Path(trace_dir) / "error.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(trace)
                where = f" (traceback in {path})"
        print(one_line(exc) + where, file=sys.stderr, flush=True)
        raise SystemExit(1) from None
