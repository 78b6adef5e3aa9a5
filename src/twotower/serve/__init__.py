"""Serve an index over HTTP: a FastAPI app with a JSON API and a search page.

    twotower serve --index outputs/index/msmarco            # http://127.0.0.1:8000, API docs at /docs

    from twotower.search import Searcher
    from twotower.serve import SearchService, create_app
    app = create_app(SearchService(Searcher.load("outputs/index/msmarco")))   # any ASGI server runs it

Endpoints: `GET /search?q=&k=&mode=`, `POST /search` (a batch), `GET /documents/{pid}`, `GET /info`,
`GET /healthz`; the page at `/`. FastAPI and uvicorn come with the `serve` extra: `pip install twotower[serve]`.
"""

from twotower.serve.app import create_app
from twotower.serve.schemas import Limits
from twotower.serve.service import SearchService

__all__ = ["create_app", "SearchService", "Limits"]
