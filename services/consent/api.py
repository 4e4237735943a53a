"""The consent service's per-account API (C14, X5, operator actions, account settings,
data-subject requests): the handlers are in `services/consent/http/`, one module per
resource; here they are put behind the API key check. The link pages a profile clicks
are in `services/consent/pages/`.

Operator actions go through the same path as every producer: the endpoint validates the
request (C11 answers 422 here already), then writes a `ConsentCommand` (or, for
suppressions, a `SuppressionCommand`) through the outbox to the command topic and answers
202 with the command id.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.runtime import Runtime


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def api_routes(rt: Runtime) -> list[Route]:
    # Imported here: the resource modules use `_iso` from this module.
    from services.consent.http import routes

    def guarded(fn):
        async def wrapper(request: Request) -> Response:
            account = request.path_params["account_id"]
            if (denied := rt.auth.guard(request, account)) is not None:
                return denied
            return await fn(request, account)

        wrapper.__name__ = fn.__name__
        return wrapper

    return routes(rt, guarded)
