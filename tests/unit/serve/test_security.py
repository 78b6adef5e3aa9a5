"""Who may ask: loopback without a key, any other address only with one; the key on every request, compared in
constant time, never logged or echoed.

    TWOTOWER_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \\
        twotower serve --index outputs/index/msmarco --host 0.0.0.0
    curl -H "X-API-Key: $TWOTOWER_API_KEY" "http://host:8000/search?q=egg"
"""

import base64
import logging

import pytest
from fastapi.testclient import TestClient

from twotower.cli import main
from twotower.serve import SearchService, create_app
from twotower.serve.security import ServeConfigError, is_loopback, resolve_api_key

KEY = "k3y-for-tests-0123456789abcdef"


@pytest.fixture(scope="module")
def locked(searcher) -> TestClient:
    return TestClient(create_app(SearchService(searcher), api_key=KEY))


@pytest.mark.parametrize("path", ["/search?q=egg", "/info", "/healthz", "/documents/0", "/", "/docs", "/static/app.js"])
def test_every_request_needs_the_key(locked, path):
    answer = locked.get(path)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")  # a browser prompts for it
    assert "API key" in answer.json()["detail"] and answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": KEY},
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": "Basic " + base64.b64encode(f"anyone:{KEY}".encode()).decode()},
    ],
    ids=["x-api-key", "bearer", "basic"],
)
def test_the_key_opens_the_api_however_it_is_sent(locked, headers):
    assert locked.get("/search", params={"q": "the longest word", "k": 2}, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": KEY[:-1]}, {"X-API-Key": KEY + "x"}, {"Authorization": "Basic !!notbase64"}, {"X-API-Key": ""}],
    ids=["short", "long", "garbled", "empty"],
)
def test_a_wrong_key_is_refused_without_echoing_anything(locked, headers, caplog):
    with caplog.at_level(logging.DEBUG):
        answer = locked.get("/info", headers=headers)

    assert answer.status_code == 401
    assert KEY not in answer.text and KEY[:-1] not in caplog.text


def test_loopback_needs_no_key_any_other_address_does(monkeypatch):
    monkeypatch.delenv("TWOTOWER_API_KEY", raising=False)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert resolve_api_key("127.0.0.1", None) is None

    for host in ("0.0.0.0", "192.168.1.5", "::", "myhost.example"):
        with pytest.raises(ServeConfigError, match="set an API key with \\$TWOTOWER_API_KEY"):
            resolve_api_key(host, None)

    assert resolve_api_key("0.0.0.0", KEY) == KEY
    monkeypatch.setenv("TWOTOWER_API_KEY", KEY)
    assert resolve_api_key("0.0.0.0", None) == KEY
    with pytest.raises(ServeConfigError, match="too short \\(6 characters, at least 16\\)"):
        resolve_api_key("0.0.0.0", "secret")


def test_the_cli_refuses_a_public_address_without_a_key_before_loading_anything(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("TWOTOWER_API_KEY", raising=False)

    status = main(["serve", "--index", str(tmp_path / "nothing-here"), "--host", "0.0.0.0"])

    assert status == 1
    assert "binding 0.0.0.0 lets other machines query the index" in capsys.readouterr().err


def test_the_cli_never_prints_the_key(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TWOTOWER_API_KEY", KEY)

    # The key is accepted, then loading the (missing) index fails: the output says why, and nothing of the key.
    status = main(["serve", "--index", str(tmp_path / "nothing-here"), "--host", "0.0.0.0"])

    out = capsys.readouterr()
    assert status == 1 and "no index at" in out.err
    assert KEY not in out.out + out.err
