"""The redis backend against a real Redis 8 server (the `redis_server` fixture starts one; nothing is mocked).

Build an index whose vectors live in a Redis vector set, load it, query it, grow it, rebuild it, restart the
server under it; and every way that goes wrong gives one line naming the URL, file or setting.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.commands.vectorset.commands import QuantizationOptions
from tiny_models import first_passages, make_checkpoint

from twotower.cli import main
from twotower.conf import CONF_DIR
from twotower.search import (
    HNSWIndex,
    IndexCorruptError,
    IndexMismatchError,
    IVFIndex,
    Searcher,
    SearchError,
    build_index,
)
from twotower.search.redis_config import (
    RedisConfig,
    RedisIndexExistsError,
    RedisUnavailableError,
    load_redis_config,
)
from twotower.search.redis_server import free_port, start, status, stop

N_DOCS = 300
NOQUANT = QuantizationOptions.NOQUANT


@pytest.fixture(scope="module")
def corpus(msmarco_dir) -> dict[str, str]:
    return first_passages(msmarco_dir, N_DOCS)


@pytest.fixture(scope="module")
def checkpoint(corpus, tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", list(corpus.values()))


@pytest.fixture
def url(redis_server) -> str:
    return redis_server.url  # redis://:test-secret@127.0.0.1:<port>


@pytest.fixture
def index(checkpoint, corpus, url, tmp_path) -> Path:
    """An hnsw index; its folder's name (unique per test) is its index name on the session's shared server."""
    folder = tmp_path / tmp_path.name
    build_index(checkpoint, corpus, folder, kind="hnsw", backend="redis", redis=url, progress=False)
    return folder


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def test_a_passage_searched_with_its_own_text_comes_back_first_with_its_cosine(index, corpus, url):
    pids = list(corpus)[::30]
    with Searcher.load(index, redis_url=url) as searcher:
        results = searcher.search([corpus[p] for p in pids], k=5)
        assert searcher.describe().startswith("redis hnsw")

    assert [r.ids[0] for r in results] == pids
    assert all(r.scores[0] == pytest.approx(1.0, abs=1e-4) for r in results)  # (1+cos)/2 turned back to cosine
    assert all(r.scores == sorted(r.scores, reverse=True) and len(r) == 5 for r in results)


def test_redis_scores_and_ranking_match_exact_faiss(checkpoint, corpus, url, tmp_path):
    build_index(checkpoint, corpus, tmp_path / "faiss", kind="flat", progress=False)
    build_index(checkpoint, corpus, tmp_path / "redis", kind="flat", backend="redis", redis=url, progress=False)
    queries = ["cooking an egg", "what is the capital of france", "symptoms of a cold", "how long is a marathon"]
    with Searcher.load(tmp_path / "faiss") as exact, Searcher.load(tmp_path / "redis", redis_url=url) as red:
        for want, got in zip(exact.search(queries, k=10), red.search(queries, k=10)):
            assert got.ids == want.ids
            np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)


def test_the_manifest_names_the_vector_set_but_never_the_password(index, url):
    text = (index / "manifest.json").read_text()
    record = json.loads(text)["redis"]

    assert "test-secret" not in text
    assert record["url"] == url.replace(":test-secret@", "")
    assert record["credentials"] is True and record["quantization"] == "noquant"
    assert client(url).vset().vcard(record["key"]) == N_DOCS


def test_the_password_never_reaches_a_log(checkpoint, corpus, url, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    build_index(checkpoint, corpus, tmp_path / "logged", backend="redis", redis=url, progress=False)
    with Searcher.load(tmp_path / "logged", redis_url=url) as searcher:
        searcher.search("cooking an egg", k=3)
        searcher.add({"new-1": "a passage added while logging"})

    assert caplog.records and "test-secret" not in caplog.text


def test_without_the_password_loading_says_where_to_give_it(index, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(SearchError, match=r"needs a password .* \(--redis-url / redis_url=\) or set \$REDIS_URL"):
        Searcher.load(index)


def test_reading_the_url_from_redis_url(index, url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", url)
    with Searcher.load(index) as searcher:
        assert len(searcher.search("cooking an egg", k=3)) == 3


def test_documents_added_later_are_appended_to_the_same_vector_set_and_survive_a_reload(index, url):
    key = json.loads((index / "manifest.json").read_text())["redis"]["key"]
    with Searcher.load(index, redis_url=url) as searcher:
        assert searcher.add({"new-1": "redis keeps vector sets in memory and on disk"}) == 1
        assert searcher.search("redis keeps vector sets in memory and on disk", k=1).ids == ["new-1"]
    with Searcher.load(index, redis_url=url) as searcher:
        assert len(searcher) == N_DOCS + 1
        assert searcher.search("redis keeps vector sets in memory and on disk", k=1).ids == ["new-1"]
    assert json.loads((index / "manifest.json").read_text())["redis"]["key"] == key  # appended, not rebuilt
    assert client(url).vset().vcard(key) == N_DOCS + 1


def test_a_failed_add_removes_its_vectors_and_serves_the_old_index(index, url, monkeypatch):
    key = json.loads((index / "manifest.json").read_text())["redis"]["key"]
    searcher = Searcher.load(index, redis_url=url)

    def fail(*args, **kwargs):
        raise OSError("disk went away")

    monkeypatch.setattr("twotower.search.add.write_manifest", fail)
    with pytest.raises(OSError):
        searcher.add({f"x{i}": f"passage number {i} about nothing" for i in range(5)})
    monkeypatch.undo()

    assert client(url).vset().vcard(key) == N_DOCS
    assert len(Searcher.load(index, redis_url=url)) == N_DOCS


def test_rows_above_the_manifest_count_are_never_served(index, url):
    """A process killed between its VADDs and its manifest leaves rows no manifest counts: they stay hidden."""
    key = json.loads((index / "manifest.json").read_text())["redis"]["key"]
    with Searcher.load(index, redis_url=url) as searcher:
        probe = searcher.encoder.encode_documents(["an orphan row from a dead add"])[0]
    client(url).vset().vadd(key, probe.astype(np.float32).tobytes(), str(N_DOCS), quantization=NOQUANT, numlinks=32)

    with Searcher.load(index, redis_url=url) as searcher:
        assert len(searcher.search("an orphan row from a dead add", k=1)) == 1  # its best match is hidden
        assert len(searcher.search("an orphan row from a dead add", k=N_DOCS)) == N_DOCS


def test_a_build_killed_half_way_leaves_the_previous_index_serving(index, checkpoint, corpus, url, monkeypatch):
    before = json.loads((index / "manifest.json").read_text())

    def die(self, vectors):
        raise KeyboardInterrupt

    monkeypatch.setattr("twotower.search.redis_backend.RedisBackend.add", die)
    with pytest.raises(KeyboardInterrupt):
        build_index(
            checkpoint, corpus, index, backend="redis", redis=RedisConfig(url=url, overwrite=True), progress=False
        )
    monkeypatch.undo()

    assert json.loads((index / "manifest.json").read_text()) == before
    keys = sorted(k.decode() for k in client(url).scan_iter(match=f"twotower:{index.name}:*"))
    assert keys == [before["redis"]["key"]]  # the half-written vector set was removed, the lock released
    with Searcher.load(index, redis_url=url) as searcher:
        assert len(searcher.search("cooking an egg", k=3)) == 3


def test_an_index_name_that_exists_is_refused_unless_overwrite(index, checkpoint, corpus, url, tmp_path):
    other = tmp_path / "elsewhere" / index.name  # same folder name, so the same default index name
    with pytest.raises(RedisIndexExistsError, match=r"already exists .*--overwrite"):
        build_index(checkpoint, corpus, other, backend="redis", redis=url, progress=False)
    assert not other.exists()

    old = json.loads((index / "manifest.json").read_text())["redis"]["key"]
    new = build_index(
        checkpoint, corpus, index, backend="redis", redis=RedisConfig(url=url, overwrite=True), progress=False
    )
    assert new.redis["key"] != old and client(url).vset().vcard(old) == 0  # the replaced set is gone
    with Searcher.load(index, redis_url=url) as searcher:
        assert len(searcher) == N_DOCS


def test_a_taken_index_name_is_refused_before_the_model_loads(index, corpus, url, tmp_path):
    other = tmp_path / "elsewhere" / index.name
    never_read = tmp_path / "no-such-checkpoint.pt"  # loading it would fail with FileNotFoundError
    with pytest.raises(RedisIndexExistsError, match=rf"the Redis index '{index.name}' already exists"):
        build_index(never_read, corpus, other, backend="redis", redis=url, progress=False)
    with pytest.raises(RedisUnavailableError, match="no Redis server answers"):
        build_index(never_read, corpus, other, backend="redis", redis="redis://127.0.0.1:1", progress=False)


def test_two_builds_into_one_index_name_do_not_interleave(checkpoint, corpus, url, tmp_path):
    lock = client(url).lock("twotower:shared:lock", timeout=60)  # what a running build holds
    assert lock.acquire(blocking=False)
    try:
        with pytest.raises(RedisIndexExistsError, match="another build is writing the Redis index 'shared'"):
            build_index(
                checkpoint,
                corpus,
                tmp_path / "a",
                backend="redis",
                redis={"url": url, "index_name": "shared"},
                progress=False,
            )
    finally:
        lock.release()


def test_no_server_names_the_url_and_how_to_start_one(checkpoint, corpus, tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}"
    with pytest.raises(
        RedisUnavailableError, match=rf"no Redis server answers at {dead}: start one with `twotower redis start`"
    ):
        build_index(checkpoint, corpus, tmp_path / "index", backend="redis", redis=dead, progress=False)
    assert not (tmp_path / "index").exists()


def test_a_wrong_password_is_one_line_without_the_password(checkpoint, corpus, redis_server, tmp_path):
    wrong = f"redis://:not-it@127.0.0.1:{redis_server.port}"
    with pytest.raises(RedisUnavailableError, match="refused the password") as caught:
        build_index(checkpoint, corpus, tmp_path / "index", backend="redis", redis=wrong, progress=False)
    assert "not-it" not in str(caught.value)


def test_a_dimension_that_does_not_match_the_model_is_refused(checkpoint, corpus, url, tmp_path):
    config = tmp_path / "redis_config.json"
    config.write_text(json.dumps({"url": url, "dim": 384}))
    with pytest.raises(IndexMismatchError, match=rf"{config}: dim is 384, but the model's document tower makes 32-d"):
        build_index(checkpoint, corpus, tmp_path / "index", backend="redis", redis=config, progress=False)


def test_ivf_is_refused_and_config_files_are_checked(checkpoint, corpus, url, tmp_path):
    with pytest.raises(ValueError, match="no ivf index"):
        build_index(checkpoint, corpus, tmp_path / "i", kind=IVFIndex(), backend="redis", redis=url, progress=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("url: redis://127.0.0.1:1\nshards: 4\n")
    with pytest.raises(ValueError, match=rf"{bad}: unknown setting\(s\) shards"):
        load_redis_config(bad)
    config, kind = load_redis_config(CONF_DIR / "index" / "redis.yaml")
    assert (config.prefix, config.quantization, kind) == (
        "twotower:",
        "noquant",
        {"m": 16, "ef_construction": 200, "ef_search": 200},
    )


def test_an_index_survives_a_server_restart(checkpoint, corpus, tmp_path):
    folder, port = tmp_path / "redis", free_port()
    url = start(folder, port).url
    try:
        build_index(
            checkpoint, corpus, tmp_path / "index", kind=HNSWIndex(m=16), backend="redis", redis=url, progress=False
        )
        assert stop(folder) and status(folder) is None
        start(folder, port)
        with Searcher.load(tmp_path / "index") as searcher:
            pid = list(corpus)[3]
            assert searcher.search(corpus[pid], k=1).ids == [pid]
    finally:
        stop(folder)


def test_the_flushed_server_is_a_clear_error_not_an_empty_answer(index, url):
    key = json.loads((index / "manifest.json").read_text())["redis"]["key"]
    client(url).delete(key)
    with pytest.raises(IndexCorruptError, match=rf"has no vector set under {key}.*rebuild the index"):
        Searcher.load(index, redis_url=url)


def test_the_cli_starts_a_server_builds_searches_and_stops(checkpoint, corpus, tmp_path, capsys, monkeypatch):
    collection = tmp_path / "collection.tsv"
    collection.write_text("".join(f"{p}\t{t}\n" for p, t in corpus.items()))
    folder, port = tmp_path / "redis", free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}")
    assert main(["redis", "start", "--dir", str(folder), "--port", str(port)]) == 0
    try:
        assert main(["redis", "status", "--dir", str(folder)]) == 0
        args = ["index", "--ckpt", str(checkpoint), "--collection", str(collection), "--out", str(tmp_path / "ix")]
        assert main([*args, "--config", str(CONF_DIR / "index" / "redis.yaml")]) == 0
        assert main([*args, "--backend", "redis"]) == 1  # the name exists
        assert "already exists" in capsys.readouterr().err
        assert main([*args, "--backend", "redis", "--overwrite", "--kind", "hnsw"]) == 0
        capsys.readouterr()
        pid = list(corpus)[11]
        assert main(["search", "--index", str(tmp_path / "ix"), "--query", corpus[pid], "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["hits"][0]["id"] == pid
        queries = tmp_path / "queries.tsv"
        queries.write_text("".join(f"q{i}\t{corpus[p]}\n" for i, p in enumerate(list(corpus)[:3])))
        run = tmp_path / "run.trec"
        assert (
            main(
                ["search", "--index", str(tmp_path / "ix"), "--queries", str(queries), "--run-out", str(run), "-k", "5"]
            )
            == 0
        )
        lines = [line.split() for line in run.read_text().splitlines()]
        assert len(lines) == 15 and [(q, d) for q, _, d, r, *_ in lines if r == "1"] == [
            (f"q{i}", p) for i, p in enumerate(list(corpus)[:3])
        ]
    finally:
        assert main(["redis", "stop", "--dir", str(folder)]) == 0
    assert main(["redis", "status", "--dir", str(folder)]) == 1
    assert main(["search", "--index", str(tmp_path / "ix"), "--query", "egg"]) == 1
    assert "twotower redis start" in capsys.readouterr().err


def test_a_server_too_busy_loading_to_answer_is_waited_for_not_a_traceback():
    """A restart over a large vector set can leave the server unable to answer PING within a second (seen at
    1M vectors): `start` keeps waiting until its timeout instead of raising redis' TimeoutError."""
    import socket

    from twotower.search.redis_server import _ping

    with socket.socket() as silent:  # accepts the connection, never answers: a server busy loading
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert _ping(silent.getsockname()[1], None) is False
