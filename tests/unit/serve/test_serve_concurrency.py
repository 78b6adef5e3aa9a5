"""Requests share one loaded model: the torch encoder is entered by one thread at a time (it is not guaranteed
thread-safe), while everything else runs concurrently. The model is never reloaded by a request."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from twotower.search import Searcher
from twotower.serve import SearchService


class Watch:
    """Wraps a function: counts calls and the most threads ever inside it at once."""

    def __init__(self, function, pause: float = 0.0) -> None:
        self.function, self.pause = function, pause
        self.inside = self.most = self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.inside += 1
            self.calls += 1
            self.most = max(self.most, self.inside)
        try:
            time.sleep(self.pause)  # long enough for the other threads to pile up at the door
            return self.function(*args, **kwargs)
        finally:
            with self.lock:
                self.inside -= 1


@pytest.fixture
def fresh(index_dir):
    with Searcher.load(index_dir, device="cpu") as searcher:
        yield searcher


def test_one_thread_at_a_time_in_the_encoder_many_in_the_search(fresh, corpus, monkeypatch):
    encoder, backend = fresh.encoder, fresh.backend
    encode = Watch(encoder.encode_queries, pause=0.01)
    search = Watch(backend.search, pause=0.05)
    monkeypatch.setattr(encoder, "encode_queries", encode)
    monkeypatch.setattr(backend, "search", search)
    service = SearchService(fresh)
    loads = Watch(Searcher.load)
    monkeypatch.setattr(Searcher, "load", loads)
    queries = [text[:200] for text in list(corpus.values())[:32]]

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda q: service.search([q], k=3)[0], queries))

    assert encode.calls == 32 and encode.most == 1, "the encoder was entered by two threads at once"
    assert search.most > 1, "faiss CPU searches should overlap"
    assert loads.calls == 0 and all(len(r) == 3 for r in found)
