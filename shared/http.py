"""The HTTP side every service shares: health probes, Prometheus metrics and API-key
authentication (X4, X5)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from shared.settings import Settings


def error(status: int, reason: str, **extra: Any) -> JSONResponse:
    """A 4xx answer with a reason a person can act on."""
    return JSONResponse({"error": reason, **extra}, status_code=status)


def health_routes(ready: Callable[[], Awaitable[dict[str, bool]]]) -> list[Route]:
    """`/healthz` (the process answers), `/readyz` (broker and database reachable),
    `/metrics` (Prometheus)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        checks = await ready()
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

    async def metrics(_: Request) -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


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

    def guard(self, request: Request, account_id: str) -> Response | None:
        """None when the request may act on `account_id`, else the error to answer."""
        account = self.account_of(request)
        if account is None:
            return error(401, "missing or unknown API key (Authorization: Bearer <key>)")
        if account != account_id:
            return error(404, "not found")
        return None
