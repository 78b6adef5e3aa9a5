"""Search modes: the service passes `mode` on when `Searcher.search` takes one, and serves `dense` alone when it
does not; `/info` lists the modes, which is what the page's mode switch shows.

A `Searcher` subclass whose `search` takes `mode: Literal["dense", "bm25"]` stands in for the hybrid search a
colleague is adding: its `bm25` answers the dense hits in reverse, so the test can see which mode ran.
"""

import shutil
from typing import Literal

import pytest
from fastapi.testclient import TestClient

from twotower.search import Searcher
from twotower.serve import SearchService, create_app
from twotower.serve.service import KNOWN_MODES, searcher_modes


class TwoModeSearcher(Searcher):
    modes = ("dense", "bm25")  # declared, as `Searcher.modes` declares what an index serves

    def search(self, queries, k: int = 10, mode: Literal["dense", "bm25"] = "dense"):
        found = super().search(queries, k=k)
        if mode == "bm25":
            for results in [found] if not isinstance(found, list) else found:
                results.hits.reverse()
        return found


class UndeclaredModeSearcher(Searcher):
    modes = None  # says nothing: the service falls back to the signature

    def search(self, queries, k: int = 10, mode: str = "dense"):
        return super().search(queries, k=k)


@pytest.fixture(scope="module")
def two_modes(index_dir) -> TestClient:
    with TwoModeSearcher.load(index_dir, device="cpu") as searcher:
        yield TestClient(create_app(SearchService(searcher)))


def test_an_index_without_bm25_serves_dense_only(searcher):
    assert searcher_modes(searcher) == ("dense",)


def test_an_index_with_bm25_serves_dense_bm25_and_hybrid_and_the_mode_reaches_the_searcher(index_dir, corpus, tmp_path):
    from twotower.search import add_bm25

    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    add_bm25(folder, progress=False)
    text = list(corpus.values())[5]
    with Searcher.load(folder, device="cpu") as searcher:
        client = TestClient(create_app(SearchService(searcher)))
        assert client.get("/info").json()["modes"] == ["dense", "bm25", "hybrid"]
        for mode in ("bm25", "hybrid"):
            served = client.get("/search", params={"q": text, "k": 4, "mode": mode}).json()
            direct = searcher.search(text, k=4, mode=mode)
            assert served["mode"] == mode and [h["id"] for h in served["hits"]] == direct.ids


def test_a_searcher_taking_a_mode_serves_the_modes_it_declares(index_dir, two_modes):
    assert two_modes.get("/info").json()["modes"] == ["dense", "bm25"]
    with UndeclaredModeSearcher.load(index_dir, device="cpu") as undeclared:
        assert searcher_modes(undeclared) == KNOWN_MODES  # takes a mode, does not say which: all known ones


def test_the_mode_is_passed_through(two_modes, corpus):
    text = list(corpus.values())[3]

    dense = two_modes.get("/search", params={"q": text, "k": 4}).json()
    bm25 = two_modes.get("/search", params={"q": text, "k": 4, "mode": "bm25"}).json()
    batch = two_modes.post("/search", json={"queries": [text], "k": 4, "mode": "bm25"}).json()["results"][0]

    assert bm25["mode"] == "bm25" and dense["mode"] == "dense"
    assert [h["id"] for h in bm25["hits"]] == [h["id"] for h in reversed(dense["hits"])]
    assert batch["hits"] == bm25["hits"]


def test_a_mode_the_index_does_not_serve_is_a_400_naming_the_ones_it_does(two_modes):
    answer = two_modes.get("/search", params={"q": "egg", "mode": "hybrid"})

    assert answer.status_code == 400
    assert answer.json() == {"detail": "unknown mode 'hybrid': this index serves dense, bm25"}
