"""`twotower redis start|stop|status`: a local Redis 8 server (127.0.0.1 only) for the redis backend.

twotower redis start --dir outputs/redis --port 6379     # returns once the server answers
twotower index --backend redis --ckpt best.pt --collection collection.tsv --out outputs/index/msmarco
twotower redis status --dir outputs/redis
twotower redis stop --dir outputs/redis                  # by PID; the data stays in --dir for the next start
"""

from __future__ import annotations

import argparse
import os

DEFAULT_DIR = "outputs/redis"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"the server's data folder (default: {DEFAULT_DIR})")
    parser.add_argument("--port", type=int, default=6379, help="port on 127.0.0.1 (default: 6379)")
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="start: require the password held in this environment variable (never on the command line)",
    )


def run(args: argparse.Namespace) -> int:
    from twotower.io.console import console as make_console
    from twotower.search.redis_server import RedisServerError, start, status, stop

    console = make_console()
    if args.action == "start":
        password = None
        if args.password_env:
            password = os.environ.get(args.password_env)
            if not password:
                raise RedisServerError(f"--password-env {args.password_env}: that environment variable is empty")
        info = start(args.dir, args.port, password)
        url = info.url.replace(f":{password}@", ":***@") if password else info.url
        console.print(f"Redis running: pid {info.pid}, {url}, data in {info.folder}")
        return 0
    if args.action == "stop":
        stopped = stop(args.dir)
        console.print(f"Redis from {args.dir} {'stopped' if stopped else 'was not running'}")
        return 0
    info = status(args.dir)
    if info is None:
        console.print(f"no Redis running from {args.dir}; start one with `twotower redis start --dir {args.dir}`")
        return 1
    console.print(f"Redis running: pid {info.pid}, port {info.port}, data in {info.folder}")
    return 0
