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
import errno
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
    this module imports none of them. `writes_trace = False` on a subclass keeps `error.txt` out of the
    trace folder (an output folder that is not ours)."""

    writes_trace = True


def disk_full(exc: BaseException) -> bool:
    """An OSError saying the disk (or the user's quota) is full, however deep in a cause chain it was raised."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_user_error(exc: BaseException) -> bool:
    """Errors with a message meant for the user (a setting, a path, a file's content, a full disk), not bugs."""
    from omegaconf.errors import OmegaConfBaseException

    exc = _unwrapped(exc)
    return disk_full(exc) or isinstance(
        exc, (UserError, ValueError, FileNotFoundError, KeyError, OmegaConfBaseException)
    )


def user_message(exc: BaseException) -> tuple[str, str]:
    """(type name, message on one line) of a user error; a full disk is named as such, with the file."""
    exc = _unwrapped(exc)
    if disk_full(exc) and not isinstance(exc, UserError):
        cause = exc
        while not (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)):
            cause = cause.__cause__ or cause.__context__
        where = f" while writing {cause.filename}" if getattr(cause, "filename", None) else ""
        return "DiskFull", (
            f"disk full{where}: no space left on the device; files are written whole or not at all, so nothing "
            "half-written was kept: free some space and run again"
        )
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError would repr() its text
    return type(exc).__name__, "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def one_line(exc: BaseException) -> str:
    """`error: <Type>: <message>` on one line (a multi-line message, as OmegaConf writes, joined with '; ')."""
    name, text = user_message(exc)
    return f"error: {name}: {text}" if text else f"error: {name}"


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
        if trace_dir is not None and getattr(_unwrapped(exc), "writes_trace", True):
            with contextlib.suppress(OSError):
                path = Path(trace_dir) / "error.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(trace)
                where = f" (traceback in {path})"
        print(one_line(exc) + where, file=sys.stderr, flush=True)
        raise SystemExit(1) from None
