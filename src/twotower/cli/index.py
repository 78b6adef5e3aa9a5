"""`twotower index`: build an index from a checkpoint and a collection, add documents to one, or add the BM25
part to an older one; `--param key=value` settings of an index kind (`index_params`) are shared with search."""

from __future__ import annotations

import argparse

from twotower.io.console import console as make_console


def open_index(args: argparse.Namespace, folder):
    """`Searcher.load` with the opening flags the verbs share (`--ckpt`, `--device`, `--no-verify`,
    `--milvus-uri`, `--redis-url`, `--param`): one place for how a command-line user opens an index."""
    from twotower.search import Searcher

    return Searcher.load(
        folder,
        checkpoint=args.ckpt,
        device=args.device,
        verify=args.verify,
        milvus_uri=args.milvus_uri,
        redis_url=getattr(args, "redis_url", None),
        **index_params(getattr(args, "param", None)),
    )


def index_params(items: list[str] | None) -> dict:
    """`--param nprobe=64 --param ef=128` as a mapping (values parsed as the kind expects)."""
    from twotower.search.kinds import parse_param

    return dict(parse_param(item) for item in items or [])


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", help="twotower .pt checkpoint whose document tower encodes the passages")
    parser.add_argument("--collection", help="collection.tsv (pid<TAB>text), an ms_marco .parquet, or .jsonl")
    parser.add_argument(
        "--out", "--index", dest="out", required=True, help="index folder to create, replace, or add to"
    )
    parser.add_argument(
        "--kind", default="flat", choices=["flat", "ivf", "hnsw"], help="index kind (default: flat, exact)"
    )
    parser.add_argument(
        "--config", help="an index config (twotower/conf/index/*.yaml, with _target_) instead of --kind"
    )
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="override an index setting, e.g. ef_search=256"
    )
    parser.add_argument(
        "--backend", default=None, choices=["faiss", "milvus", "redis"], help="where vectors live (default: faiss)"
    )
    parser.add_argument(
        "--redis-config", help="redis backend: JSON/YAML with url, index_name, prefix, quantization, m, ef_*, dim"
    )
    parser.add_argument(
        "--redis-url", help="redis backend: redis://[:password@]host:port (default: $REDIS_URL, else localhost:6379)"
    )
    parser.add_argument(
        "--milvus-uri",
        help="Milvus server URI (http://host:19530); default: Milvus Lite in OUT/milvus.db. "
        "Credentials in it are used, never written to the manifest",
    )
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--device", help="torch device for encoding (default: cuda when available)")
    parser.add_argument(
        "--add", action="store_true", help="add the collection's documents to the existing index at --out"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out even if it is a folder twotower index did not write (redis: and an index name that exists)",
    )
    parser.add_argument(
        "--skip-existing", action="store_true", help="with --add: skip ids already indexed instead of failing"
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="with --add: skip the checksum check of the index files (sizes are still checked)",
    )
    parser.add_argument(
        "--no-bm25",
        dest="bm25",
        action="store_false",
        help="do not store a BM25 index of the documents (the index then serves --mode dense only)",
    )
    parser.add_argument(
        "--add-bm25",
        action="store_true",
        help="give the existing index at --out a BM25 index of its documents (or rebuild it); no re-encoding",
    )


def _index_kind(args: argparse.Namespace):
    from twotower.search.kinds import make_kind

    if args.config:
        from twotower.search.kinds import kind_from_config

        return kind_from_config(args.config, **index_params(args.param))
    return make_kind(args.kind, **index_params(args.param))


def _redis_settings(args: argparse.Namespace):
    """--backend redis: its config (file, then --redis-url / --overwrite) and kind; --config may be conf/index/redis.yaml."""
    from twotower.search.redis_config import load_redis_config

    given = args.redis_config or (args.config if args.config and _config_backend(args.config) == "redis" else None)
    config, kind = load_redis_config(given, url=args.redis_url, overwrite=args.overwrite or None)
    if kind and not args.config:  # the redis config's m / ef_* set the kind, as --param does
        from twotower.search.kinds import make_kind

        kind = make_kind(kind.pop("kind", "hnsw"), **{**kind, **index_params(args.param)})
        return config, kind
    return config, _index_kind(args)


def _config_backend(path: str) -> str | None:
    from omegaconf import OmegaConf

    data = OmegaConf.load(path)
    return data.get("backend") if hasattr(data, "get") else None


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from twotower.search import build_index

    console = make_console()
    if args.add_bm25:
        from twotower.search import add_bm25

        manifest = add_bm25(args.out, verify=args.verify)
        console.print(
            f"{args.out}: BM25 index of {manifest.bm25['count']:,} passages written in "
            f"{manifest.bm25['seconds']:.1f} s; it now serves --mode dense, bm25 and hybrid"
        )
        return 0
    if not args.collection:
        raise ValueError("--collection is required to build an index or --add to one")
    if args.add:
        with open_index(args, args.out) as searcher:
            added = searcher.add(
                args.collection, skip_existing=args.skip_existing, batch_size=args.batch_size, progress=True
            )
            console.print(f"added [bold]{added:,}[/] documents to {args.out}: {searcher.describe()}")
        return 0
    if not args.ckpt:
        raise ValueError("--ckpt is required to build an index (only --add reuses the index's own checkpoint)")
    backend = args.backend or (_config_backend(args.config) if args.config else None) or "faiss"
    redis, kind = _redis_settings(args) if backend == "redis" else (None, _index_kind(args))
    manifest = build_index(
        args.ckpt,
        args.collection,
        args.out,
        kind=kind,
        backend=backend,
        milvus_uri=args.milvus_uri,
        batch_size=args.batch_size,
        device=args.device,
        overwrite=args.overwrite,
        redis=redis,
        bm25=args.bm25,
    )
    table = Table(title=f"index built: {args.out}", show_header=False, title_style="bold green")
    table.add_column(style="dim")
    table.add_column()
    table.add_row("index", manifest.describe())
    table.add_row("settings", ", ".join(f"{k}={v}" for k, v in manifest.index.items() if k != "kind") or "—")
    table.add_row("checkpoint", f"{manifest.checkpoint['path']} (sha256 {manifest.checkpoint['sha256'][:12]})")
    table.add_row(
        "build",
        f"{manifest.build['seconds']:.1f} s, {manifest.build['passages_per_second']:,.0f} passages/s "
        f"(encoding {manifest.build['encode_seconds']:.1f} s on {manifest.build['device']})",
    )
    table.add_row(
        "bm25",
        f"{manifest.bm25['count']:,} passages in {manifest.bm25['seconds']:.1f} s"
        if manifest.bm25
        else "— (dense only)",
    )
    table.add_row("size", f"{sum(manifest.files.values()) / 2**20:,.1f} MB in {len(manifest.files)} files")
    console.print(table)
    return 0
