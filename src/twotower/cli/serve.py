"""`twotower serve`: an index over HTTP (JSON API, search page at /, API docs at /docs) under uvicorn.

twotower serve --index outputs/index/msmarco                          # http://127.0.0.1:8000
TWOTOWER_API_KEY=... twotower serve --index outputs/index/msmarco --host 0.0.0.0 --port 8080
"""

from __future__ import annotations

import argparse

from twotower.io.console import console as make_console


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="index folder built by `twotower index`")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs an API key)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--api-key",
        help="key every request must carry; prefer $TWOTOWER_API_KEY (a command line is visible to other users)",
    )
    parser.add_argument("--ckpt", help="checkpoint (default: the one recorded in the index; must be the same model)")
    parser.add_argument("--device", help="torch device for the query tower (default: cuda when available)")
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="search setting, e.g. ef_search=256, nprobe=64"
    )
    parser.add_argument("--max-k", type=int, default=100, help="most results a query may ask for (default 100)")
    parser.add_argument("--max-batch", type=int, default=64, help="most queries in one POST /search (default 64)")
    parser.add_argument(
        "--max-query-chars", type=int, default=1000, help="longest query accepted, in characters (default 1000)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and faiss threads per request (default 1: concurrent requests use the cores; raise it for "
        "few clients on a big machine)",
    )
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip the checksum check of the index files on load"
    )
    parser.add_argument("--milvus-uri", help="the Milvus URI with its credentials, when the index needs them")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    from twotower.serve.security import resolve_api_key

    # Refuse an unsafe bind before spending seconds loading the model.
    api_key = resolve_api_key(args.host, args.api_key)
    for name in ("max_k", "max_batch", "max_query_chars", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    try:
        import uvicorn

        from twotower.serve import Limits, SearchService, create_app
        from twotower.serve.service import limit_compute_threads
    except ImportError as exc:
        raise ValueError(
            f"twotower serve needs the `serve` extra ({exc.name} is missing): pip install 'twotower[serve]'"
        ) from None
    import warnings

    from twotower.cli.index import open_index
    from twotower.search.results import UnknownQueryWarning

    console = make_console()
    limit_compute_threads(args.threads)
    # A query the model cannot read is answered with a `warning` field; the server's log need not repeat it.
    warnings.filterwarnings("ignore", category=UnknownQueryWarning)
    limits = Limits(max_k=args.max_k, max_batch=args.max_batch, max_query_chars=args.max_query_chars)
    with open_index(args, args.index) as searcher:
        service = SearchService(searcher, limits)
        app = create_app(service, api_key=api_key)
        url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
        console.print(
            f"serving [bold]{args.index}[/] ({searcher.describe(short=True)}; modes: {', '.join(service.modes)})"
        )
        # Say whether a key is required, never what it is.
        console.print(
            f"search page {url}/ · API docs {url}/docs · "
            + ("API key required" if api_key else "no API key (loopback only)")
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
