"""The HTTP API of `twotower serve`, through FastAPI's test client: every endpoint, and every kind of bad
input answered with a 4xx and one message (`{"detail": "..."}`), never a 500.

    client = TestClient(create_app(SearchService(Searcher.load(index))))
    client.get("/search", params={"q": "cooking an egg", "k": 3}).json()["hits"]
"""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from twotower.serve import Limits, SearchService, create_app


@pytest.fixture(scope="module")
def client(searcher) -> TestClient:
    return TestClient(create_app(SearchService(searcher, Limits(max_k=50, max_batch=8, max_query_chars=500))))


def some_passages(corpus, n=5) -> list[tuple[str, str]]:
    return list(corpus.items())[10 : 10 + n]


# -- what a client gets ---------------------------------------------------------------------------------------


def test_get_search_answers_what_the_searcher_finds(client, searcher, corpus):
    pid, text = some_passages(corpus)[0]

    answer = client.get("/search", params={"q": text, "k": 3})

    assert answer.status_code == 200
    body = answer.json()
    expected = searcher.search(text, k=3)
    assert [h["id"] for h in body["hits"]] == expected.ids and body["hits"][0]["id"] == pid
    assert [h["score"] for h in body["hits"]] == pytest.approx(expected.scores)
    assert body["hits"][0]["text"] == corpus[pid] and [h["rank"] for h in body["hits"]] == [1, 2, 3]
    assert all(len(h["snippet"]) <= 264 and h["snippet"].strip(" …") in h["text"] for h in body["hits"])
    assert body["query"] == text and body["mode"] == "dense" and body["truncated"] is False
    timings = body["timings_ms"]
    assert timings["encode"] > 0 and timings["search"] > 0 and timings["fetch"] > 0
    assert timings["total"] == pytest.approx(timings["encode"] + timings["search"] + timings["fetch"])


def test_post_search_answers_a_batch_in_order(client, searcher, corpus):
    passages = some_passages(corpus, 4)

    answer = client.post("/search", json={"queries": [text for _, text in passages], "k": 2})

    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["hits"][0]["id"] for r in results] == [pid for pid, _ in passages]
    assert [r["query"] for r in results] == [text for _, text in passages]
    assert all(len(r["hits"]) == 2 for r in results)


def test_a_document_by_id(client, corpus):
    pid, text = some_passages(corpus)[2]

    answer = client.get(f"/documents/{pid}")

    assert answer.status_code == 200 and answer.json() == {"id": pid, "text": text, "metadata": {}}


def test_health_and_info_describe_the_loaded_index(client, index_dir):
    assert client.get("/healthz").json() == {"status": "ok", "documents": 300}

    info = client.get("/info").json()

    assert info["backend"] == "faiss" and info["index"]["kind"] == "flat" and info["index"]["dim"] == 32
    assert info["documents"] == 300 and info["modes"] == ["dense"]
    assert info["manifest_sha256"] == hashlib.sha256((index_dir / "manifest.json").read_bytes()).hexdigest()
    assert info["model"]["tower"] == "MeanTower" and info["model"]["checkpoint"] == "best.pt"
    assert len(info["model"]["checkpoint_sha256"]) == 64
    assert info["limits"]["max_k"] == 50
    assert str(index_dir.parent) not in json.dumps(info), "/info must not reveal the server's folders"


def test_the_page_and_the_offline_api_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="search-form"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200

    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn." not in docs.text  # no internet at run time
    bundle = docs.text.split('src="')[1].split('"')[0]
    assert client.get(bundle).status_code == 200
    assert "/search" in client.get("/openapi.json").json()["paths"]


def test_a_query_the_model_cannot_read_is_answered_with_a_warning(client, corpus):
    with pytest.warns(UserWarning, match="results are arbitrary"):  # the Searcher's own warning, in-process
        unread = client.get("/search", params={"q": "zzqxv wqqpz"}).json()
    read = client.get("/search", params={"q": list(corpus.values())[0][:100]}).json()

    assert (
        unread["warning"] == "the model knows none of the query's words, so its results are arbitrary: try other words"
    )
    assert read["warning"] is None


def test_a_long_passage_gets_a_snippet_around_the_query_words(client, corpus):
    pid, text = max(corpus.items(), key=lambda item: len(item[1]))
    last_words = " ".join(text.split()[-6:])

    hit = next(h for h in client.get("/search", params={"q": text[:400], "k": 50}).json()["hits"] if h["id"] == pid)

    assert len(text) > 400 and hit["text"] == text
    assert hit["snippet"].endswith(" …") and len(hit["snippet"]) < len(text) and last_words not in hit["snippet"]


def test_concurrent_requests_get_the_same_answers_as_one_at_a_time(client, corpus):
    queries = [text[:300] for _, text in some_passages(corpus, 8)] * 5
    alone = [client.get("/search", params={"q": q, "k": 5}).json()["hits"] for q in queries]

    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda q: client.get("/search", params={"q": q, "k": 5}).json()["hits"], queries))

    assert together == alone


# -- bad input: a 4xx and one message ---------------------------------------------------------------------------

BAD_GETS = [
    ({"q": ""}, 400, "the query is empty: give some words to search for"),
    ({"q": "   "}, 400, "the query is empty: give some words to search for"),
    ({}, 422, "q is required"),
    ({"q": "egg", "k": 0}, 400, "k must be between 1 and 50, got 0"),
    ({"q": "egg", "k": 10**9}, 400, "k must be between 1 and 50, got 1000000000"),
    ({"q": "egg", "k": "ten"}, 422, "k: input should be a valid integer, unable to parse string as an integer"),
    ({"q": "egg", "mode": "bm25"}, 400, "unknown mode 'bm25': this index serves dense"),
    ({"q": "egg " * 200}, 400, "the query is too long: 800 characters, at most 500"),
]


@pytest.mark.parametrize(("params", "status", "message"), BAD_GETS, ids=lambda v: str(v)[:30])
def test_a_bad_query_gets_a_4xx_with_one_message(client, params, status, message):
    answer = client.get("/search", params=params)

    assert answer.status_code == status
    assert answer.json() == {"detail": message}


BAD_POSTS = [
    ({"queries": []}, 400, "queries is empty: give at least one query"),
    ({"queries": ["egg"] * 9}, 400, "too many queries in one request: 9, at most 8"),
    ({"queries": ["egg", ""]}, 400, "the query is empty (query 1): give some words to search for"),
    ({"queries": "egg"}, 422, "queries: input should be a valid list"),
    ({"k": 3}, 422, "queries is required"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_POSTS, ids=lambda v: str(v)[:30])
def test_a_bad_batch_gets_a_4xx_with_one_message(client, body, status, message):
    answer = client.post("/search", json=body)

    assert answer.status_code == status
    assert answer.json() == {"detail": message}


def test_a_body_that_is_not_json_or_too_large_is_refused(client):
    broken = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert broken.json() == {
        "detail": "the request body is not valid JSON (Expecting property name enclosed in double quotes)"
    }

    huge = client.post("/search", content=b"x" * (300 * 1024), headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert huge.json() == {"detail": "request body too large: at most 262,144 bytes"}


def test_a_streamed_body_without_a_length_is_cut_off_too(client):
    chunks = (b"x" * 65536 for _ in range(8))  # no Content-Length: the middleware counts as it reads

    answer = client.post("/search", content=chunks, headers={"content-type": "application/json"})

    assert answer.status_code == 413


def test_a_missing_document_is_a_404_naming_it(client):
    answer = client.get("/documents/no-such-id")

    assert answer.status_code == 404 and answer.json() == {"detail": "no document with id 'no-such-id' in this index"}


@pytest.mark.parametrize(("method", "path"), [("delete", "/documents/0"), ("put", "/search"), ("post", "/info")])
def test_it_is_read_only(client, method, path):
    assert getattr(client, method)(path).status_code == 405
