"""`create_app(service)`: the FastAPI app of `twotower serve`, read-only: every route answers, none writes.

Errors are one message each, `{"detail": "..."}`, with a 4xx status: 400 for a request the service refuses
(empty query, k out of range, unknown mode, too many or too long queries), 401 without the API key, 404 for
a missing document, 405 for a method other than GET (or POST to /search), 413 for an oversized body and 422
for a value of the wrong type. The OpenAPI docs at `/docs` load their scripts from the app (fastapi-offline),
not a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from twotower.errors import UserError
from twotower.serve.schemas import BatchOut, DocumentOut, ErrorOut, ResultsOut, SearchRequest
from twotower.serve.security import BodyLimit, key_matches, presented_key
from twotower.serve.service import BadRequest, SearchService

STATIC = Path(__file__).resolve().parent / "static"
ERRORS = {status: {"model": ErrorOut} for status in (400, 401, 404, 413, 422)}
# The page loads its own script and style and talks to this origin only.
PAGE_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"


def create_app(service: SearchService, api_key: str | None = None) -> FastAPI:
    """The app around a loaded `service`; with `api_key`, every request must carry it (see security.py)."""
    app = FastAPIOffline(
        title="twotower search",
        description="Search an index built by `twotower index` with the two-tower model that built it.",
        version="1",
        responses=ERRORS,
    )
    app.state.service = service
    _add_error_handlers(app)
    _add_routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Middleware added last runs first: the key is checked before any body is read.
    app.add_middleware(BodyLimit, max_bytes=service.limits.max_body_bytes)
    _add_key_check(app, api_key)
    return app


def _add_routes(app: FastAPI, service: SearchService) -> None:
    @app.get("/search", response_model=ResultsOut, summary="search one query")
    def search_one(
        q: str = Query(description="the query text"),
        k: int = Query(10, description="results to return (1 .. limits.max_k)"),
        mode: str = Query("dense", description="dense, or another mode listed by /info"),
    ) -> ResultsOut:
        # A sync route: FastAPI runs it on a worker thread, so requests search concurrently.
        found = service.search([q], k=k, mode=mode)[0]
        return ResultsOut.of(found, mode, service.unread_warning(q, mode))

    @app.post("/search", response_model=BatchOut, summary="search a batch of queries")
    def search_batch(request: SearchRequest) -> BatchOut:
        found = service.search(request.queries, k=request.k, mode=request.mode)
        mode = request.mode
        return BatchOut(results=[ResultsOut.of(r, mode, service.unread_warning(r.query, mode)) for r in found])

    @app.get("/documents/{pid:path}", response_model=DocumentOut, summary="one stored document by id")
    def document(pid: str) -> DocumentOut:
        found = service.document(pid)
        return DocumentOut(id=found.id, text=found.text, metadata=found.metadata)

    @app.get("/info", summary="the model, index, backend, corpus size, manifest hash, modes and limits")
    def info() -> dict:
        return service.info()

    @app.get("/healthz", summary="liveness: the index is loaded and answering")
    def healthz() -> dict:
        return {"status": "ok", "documents": len(service.searcher)}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadRequest)
    def refused(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(UserError)
    def user_error(request: Request, exc: UserError) -> JSONResponse:
        # The searcher's own checks (e.g. a mode the index lacks the files for): the client's to fix.
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI answers a list of pydantic errors; the client gets the first, as one sentence.
        return JSONResponse({"detail": _one_message(exc.errors())}, status_code=422)


def _one_message(errors: list[dict]) -> str:
    if not errors:
        return "invalid request"
    first = errors[0]
    where = [str(part) for part in first.get("loc", ()) if part not in ("query", "body", "path")]
    name = ".".join(where) or "the request body"
    if first.get("type") == "json_invalid":
        return f"the request body is not valid JSON ({(first.get('ctx') or {}).get('error', 'unreadable')})"
    if first.get("type") == "missing":
        return f"{name} is required"
    message = str(first.get("msg", "is invalid"))
    return f"{name}: {message[:1].lower()}{message[1:]}"


def _add_key_check(app: FastAPI, api_key: str | None) -> None:
    @app.middleware("http")
    async def check_key(request: Request, call_next) -> Response:
        if api_key is not None and not key_matches(presented_key(dict(request.headers)), api_key):
            # Basic realm: a browser opening the page prompts for the key (as the password).
            response: Response = JSONResponse(
                {
                    "detail": "missing or wrong API key: send it as X-API-Key, a Bearer token, or the Basic-auth password"
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="twotower", charset="UTF-8"'},
            )
        else:
            response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
