"""The HTTP side every service shares: health probes, Prometheus metrics and API-key
authentication, correlation ids of requests (X4, X5)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.limits import MAX_INPUT_BYTES
from shared.messaging.headers import HTTP_CORRELATION_ID, REQUEST_TRACE, read_http_trace
from shared.settings import Settings


def error(status: int, reason: str, **extra: Any) -> JSONResponse:
    """A 4xx answer with a reason a person can act on."""
    return JSONResponse({"error": reason, **extra}, status_code=status)


def health_routes(ready: Callable[[], Awaitable[dict[str, bool | str]]]) -> list[Route]:
    """`/healthz` (the process answers), `/readyz` (broker and database reachable, every
    consumer and background loop making progress: a check that fails carries its reason
    instead of `true`, X8), `/metrics` (Prometheus)."""

    async def healthz(_: Request) -> Response:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        """Readiness: broker, database, every consumer and loop; 503 names what fails."""
        checks = await ready()
        status = 200 if all(v is True for v in checks.values()) else 503
        return JSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

    async def metrics(_: Request) -> Response:
        """Prometheus metrics in the text exposition format."""
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


def iso(value: Any) -> Any:
    """A timestamp in a JSON answer: ISO 8601; anything else (None, text) as it is."""
    return value.isoformat() if hasattr(value, "isoformat") else value


class ApiAuth:
    """Bearer API keys, each granting exactly one account (X5).

    `account_of` answers None for a missing or unknown key. Routes that take an account
    in the path answer 404 when it is not the key's account, so a key cannot even learn
    whether another account's data exists."""

    def __init__(self, settings: Settings) -> None:
        self._keys = settings.api_key_accounts

    def account_of(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            return None
        return self._keys.get(key.strip())

    def actor(self, request: Request) -> str | None:
        """By whom an operator act is made (C2): the API key's name, a fingerprint of the
        key (never the key), with the operator the caller names in `X-Actor`, if any."""
        header = request.headers.get("authorization", "")
        key = header.partition(" ")[2].strip()
        if key not in self._keys:
            return None
        name = f"api-key:{self._keys[key]}/{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        who = request.headers.get("x-actor", "").strip()[:120]
        return f"{who} via {name}" if who else name

    def guarded(
        self, handler: Callable[[Request, str], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint that answers `guard`'s error, or calls `handler(request, account)`
        with the path's account when the key may act on it (X5)."""

        async def endpoint(request: Request) -> Response:
            account = request.path_params["account_id"]
            if (denied := self.guard(request, account)) is not None:
                return denied
            return await handler(request, account)

        wrapped = getattr(handler, "func", handler)  # a functools.partial: its function
        endpoint.__name__ = getattr(wrapped, "__name__", "endpoint")
        endpoint.__doc__ = wrapped.__doc__
        # The API reference (shared/openapi.py) reads this to name the API key.
        endpoint.requires_api_key = True  # type: ignore[attr-defined]
        return endpoint

    def guard(self, request: Request, account_id: str) -> Response | None:
        """None when the request may act on `account_id`, else the error to answer."""
        account = self.account_of(request)
        if account is None:
            return error(401, "missing or unknown API key (Authorization: Bearer <key>)")
        if account != account_id:
            return error(404, "not found")
        return None


class InputGuard:
    """Junk in a request is the caller's mistake, answered 4xx with the reason, never a
    500: NUL or other control bytes in the path or query (PostgreSQL refuses NUL in
    text), bodies over the input cap, and what only shows once a handler parses (JSON
    nested 100k deep, `limit=abc`, numbers too big for a column)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _request_problem(scope)
        if problem is not None:
            status, reason = problem
            await error(status, reason)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class TraceHeaders:
    """X4 for HTTP: a request's `X-Correlation-Id` (or the trace id of its W3C
    `traceparent`; a new id when it has neither) is bound to its log lines, carried to
    the Kafka outputs its units of work publish (`shared.messaging.headers.REQUEST_TRACE`), and
    answered in the response's `X-Correlation-Id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace = read_http_trace(scope.get("headers", ()))
        echoed = (HTTP_CORRELATION_ID.encode(), trace.correlation_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        token = REQUEST_TRACE.set(trace)
        try:
            with structlog.contextvars.bound_contextvars(correlation_id=trace.correlation_id):
                await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_TRACE.reset(token)


def _request_problem(scope: Scope) -> tuple[int, str] | None:
    path = scope.get("path", "")
    query = scope.get("query_string", b"")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return 400, "the path contains a control character"
    if b"%00" in query or any(b < 32 for b in query):
        return 400, "the query contains a NUL or control character"
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                size = int(value)
            except ValueError:
                return 400, "Content-Length is not a number"
            if size > MAX_INPUT_BYTES:
                return 413, f"body of {size} bytes is over the limit of {MAX_INPUT_BYTES}"
    return None


async def _bad_input(_: Request, exc: Exception) -> Response:
    if isinstance(exc, RecursionError):
        return error(400, "body is nested too deeply")
    if isinstance(exc, json.JSONDecodeError):
        return error(400, "body is not JSON")
    return error(400, f"invalid input: {str(exc)[:300]}")


# Exceptions that, when a handler lets them out, mean the request carried bad input.
BAD_INPUT_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    RecursionError: _bad_input,
    ValueError: _bad_input,  # int("abc"), JSON errors, asyncpg's client-side DataError
    asyncpg.exceptions.DataError: _bad_input,  # out of range, NUL in text, bad encoding
}
