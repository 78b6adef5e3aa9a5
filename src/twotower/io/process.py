"""Is a process we started still running? By pid, and on Linux by its start time too, so a zombie or a pid
the system has since given to another process does not count (Deep Memory workers, the Redis server)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def process_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (Linux), to tell a reused pid from our worker."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """True while `pid` runs and is the same process that was launched (not a zombie, not a reused pid)."""
    stat_path = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():  # Linux: also catches zombies and reused pids
        try:
            stat = stat_path.read_text()
        except OSError:
            return False
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            return False
        return start_ticks is None or int(fields[19]) == start_ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(pid: int) -> bool:
    """True if `pid` was a child of this process that has exited (a pytest fixture's server): reaped now."""
    with contextlib.suppress(ChildProcessError):
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    return False
