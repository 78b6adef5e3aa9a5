"""Who may ask: loopback by default, an API key for any other address, and a cap on request bodies.

The key is compared in constant time (`hmac.compare_digest`) on every request and never logged or echoed.
A client sends it as `X-API-Key: KEY`, `Authorization: Bearer KEY`, or HTTP Basic auth with the key as the
password (any user name): the last is what a browser prompts for, so the search page works behind a key
without the key ever appearing in a URL (URLs end up in access logs).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twotower.errors import UserError

API_KEY_ENV = "TWOTOWER_API_KEY"
MIN_KEY_CHARS = 16


class ServeConfigError(UserError, ValueError):
    """The server was asked to start in a way that is not safe (a public address without a key, a weak key)."""


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def resolve_api_key(host: str, given: str | None) -> str | None:
    """The key to require: `given` (--api-key), else $TWOTOWER_API_KEY, else none, which only loopback allows."""
    key = given or os.environ.get(API_KEY_ENV) or None
    if key is None:
        if not is_loopback(host):
            raise ServeConfigError(
                f"binding {host} lets other machines query the index: set an API key with ${API_KEY_ENV} "
                "(or --api-key), e.g. export TWOTOWER_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return None
    if len(key) < MIN_KEY_CHARS:
        raise ServeConfigError(
            f"the API key is too short ({len(key)} characters, at least {MIN_KEY_CHARS}): use a random one, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return key


def presented_key(headers: dict[str, str]) -> str | None:
    """The key a request carries (X-API-Key, Bearer, or Basic auth's password), or None."""
    if "x-api-key" in headers:
        return headers["x-api-key"]
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def key_matches(presented: str | None, expected: str) -> bool:
    # compare_digest takes the same time wherever the strings differ: the answer time leaks nothing of the key.
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


class BodyLimit:
    """Pure ASGI middleware: refuse a request body over `max_bytes` (413) before anything parses it, whether it
    declares its length or streams it in chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen, refused = 0, False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes and not refused:
                refused = True
                await self._refuse(send)
            # Once refused, the app sees the client gone and stops reading; what it answers is dropped below.
            return {"type": "http.disconnect"} if refused else message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        body = f'{{"detail": "request body too large: at most {self.max_bytes:,} bytes"}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
