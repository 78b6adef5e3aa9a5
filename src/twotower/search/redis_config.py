"""Where a redis-backed index keeps its vectors (`RedisConfig`), read from a small JSON/YAML file, and the
connection to that server with one clear line for each way it fails.

A config file, in the spirit of the seed project's `redis_config.json` (every key optional):

    {"url": "redis://127.0.0.1:6379", "index_name": "msmarco", "prefix": "twotower:", "metric": "cosine",
     "quantization": "noquant", "m": 16, "ef_construction": 200, "ef_search": 200, "dim": 384}

`url` defaults to `$REDIS_URL`, else redis://127.0.0.1:6379; `index_name` to the index folder's name; `m`,
`ef_construction`, `ef_search` (and `kind`: hnsw | flat) are the index kind's settings; `dim`, if given, must
be the model's vector size. A password in the URL (`redis://:secret@host:6379`) is used, never written down.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twotower.search.errors import IndexMismatchError, SearchError
from twotower.search.manifest import redact_uri

DEFAULT_URL = "redis://127.0.0.1:6379"
QUANTIZATIONS = ("noquant", "q8", "bin")
KIND_KEYS = ("kind", "m", "ef_construction", "ef_search")


class RedisUnavailableError(SearchError):
    """No Redis server answers at the URL, it refuses the password, or it has no vector sets."""


class RedisIndexExistsError(SearchError):
    """The Redis index name is taken (by another build or another folder) and overwriting was not asked for."""


@dataclass
class RedisConfig:
    url: str | None = None  # None: $REDIS_URL, else DEFAULT_URL
    index_name: str | None = None  # None: the index folder's name
    prefix: str = "twotower:"
    metric: str = "cosine"
    quantization: str = "noquant"  # full float32; "q8" (Redis's default) and "bin" trade recall for memory
    dim: int | None = None
    overwrite: bool = False  # replace an index name that exists (not stored: a per-build choice)
    source: str = "the redis config"  # what to name in error messages

    def __post_init__(self) -> None:
        if self.metric.lower() not in ("cosine", "ip"):
            raise ValueError(
                f"{self.source}: metric {self.metric!r} is not supported: Redis vector sets compare by cosine, "
                "which is the towers' inner product (their vectors have unit length); use metric: cosine"
            )
        if self.quantization.lower() not in QUANTIZATIONS:
            raise ValueError(
                f"{self.source}: quantization {self.quantization!r} is not one of {', '.join(QUANTIZATIONS)}"
            )
        if self.dim is not None and (not isinstance(self.dim, int) or self.dim < 1):
            raise ValueError(f"{self.source}: dim must be a positive integer, got {self.dim!r}")

    def resolved_url(self) -> str:
        return self.url or os.environ.get("REDIS_URL") or DEFAULT_URL

    def name_for(self, folder: Path) -> str:
        return self.index_name or Path(folder).resolve().name

    def check_dim(self, dim: int) -> None:
        if self.dim is not None and self.dim != dim:
            raise IndexMismatchError(
                f"{self.source}: dim is {self.dim}, but the model's document tower makes {dim}-d vectors; "
                f"set dim: {dim} (or remove it)"
            )


def load_redis_config(
    given: str | Path | Mapping[str, Any] | RedisConfig | None, **overrides: Any
) -> tuple[RedisConfig, dict[str, Any]]:
    """-> (RedisConfig, index kind settings) from a .json/.yaml file, a mapping, a URL string or a RedisConfig.

    `overrides` (from the command line: url, overwrite) win over the file. Unknown keys are refused by name.
    """
    if isinstance(given, RedisConfig):
        return dataclasses.replace(given, **{k: v for k, v in overrides.items() if v is not None}), {}
    source = "the redis config"
    if given is None:
        data: dict[str, Any] = {}
    elif isinstance(given, str) and "://" in given:
        data = {"url": given}
    elif isinstance(given, Mapping):
        data = dict(given)
    else:
        path = Path(given)
        source = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"redis config {path} does not exist")
        data = _read_file(path)
    data.pop("_target_", None), data.pop("backend", None)
    if isinstance(data.get("redis"), Mapping):  # conf/index/redis.yaml nests the location under `redis:`
        data = {**{k: v for k, v in data.items() if k != "redis"}, **data["redis"]}
    kind = {k: data.pop(k) for k in KIND_KEYS if k in data}
    fields = {f.name for f in dataclasses.fields(RedisConfig)} - {"source"}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(
            f"{source}: unknown setting(s) {', '.join(unknown)}; a redis config has {', '.join(sorted(fields | set(KIND_KEYS)))}"
        )
    data.update({k: v for k, v in overrides.items() if v is not None})
    return RedisConfig(**data, source=source), kind


def _read_file(path: Path) -> dict[str, Any]:
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
        else:
            from omegaconf import OmegaConf

            data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:  # JSON, YAML and interpolation errors all mean: this file cannot be read
        raise ValueError(f"redis config {path} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"redis config {path} must be a mapping of settings (url, index_name, ...)")
    return data


def connect(url: str):
    """A client for `url` that has answered PING and has vector sets; every failure is one line naming the URL
    without its password."""
    import redis

    safe = redact_uri(url)[0]
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5)
        client.ping()
    except redis.exceptions.AuthenticationError:
        raise RedisUnavailableError(
            f"Redis at {safe} refused the password: put the right one in the URL (redis://:PASSWORD@host:port) "
            "or $REDIS_URL"
        ) from None
    except redis.exceptions.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise RedisUnavailableError(
                f"Redis at {safe} needs a password: give it in the URL (redis://:PASSWORD@host:port) or $REDIS_URL"
            ) from None
        raise
    except redis.exceptions.ConnectionError:
        raise RedisUnavailableError(
            f"no Redis server answers at {safe}: start one with `twotower redis start` (or `make redis`), "
            "or point --redis-url / $REDIS_URL at yours"
        ) from None
    except ValueError as exc:  # a malformed URL
        raise RedisUnavailableError(f"bad Redis URL {safe}: {exc}") from None
    try:
        client.execute_command("VCARD", "twotower:probe")  # a key that does not exist: 0, or "unknown command"
    except redis.exceptions.ResponseError:
        version = client.info("server").get("redis_version", "?")
        raise RedisUnavailableError(
            f"Redis at {safe} is version {version}, without vector sets (VADD): the redis backend needs Redis 8 "
            "(`twotower redis start` runs one)"
        ) from None
    return client


def refuse_taken_name(client, config: RedisConfig, folder: Path, url: str) -> None:
    """Raise if the index name `config` gives `folder` holds a committed index and the config does not say
    overwrite."""
    name = config.name_for(folder)
    owner = client.hgetall(f"{config.prefix}{name}")
    if owner and not config.overwrite:
        held_by = owner.get(b"folder", b"?").decode()
        raise RedisIndexExistsError(
            f"the Redis index {name!r} already exists at {redact_uri(url)[0]} (built into {held_by}); "
            "pass --overwrite (overwrite: true) to replace it, or choose another index_name"
        )


def build_running(name: str, url: str) -> RedisIndexExistsError:
    """The error for a name whose lock another build holds."""
    return RedisIndexExistsError(
        f"another build is writing the Redis index {name!r} at {redact_uri(url)[0]}; wait for it to "
        "finish, or choose another index_name"
    )


def check_before_build(given: Any, folder: Path) -> RedisConfig:
    """Fail before the model loads and the corpus is encoded: the config reads, the server answers, the name is
    free (or overwrite) and no other build holds it. The build checks again under the name's lock (this only
    fails early, while nothing has been spent); returns the config the build will use."""
    config = given if isinstance(given, RedisConfig) else load_redis_config(given)[0]
    url = config.resolved_url()
    client = connect(url)
    try:
        refuse_taken_name(client, config, folder, url)
        name = config.name_for(folder)
        if client.exists(f"{config.prefix}{name}:lock"):
            raise build_running(name, url)
    finally:
        client.close()
    return config
