"""A profile's suppressions in force, soft-bounce counts and change history (S1–S6)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.suppression.adapters import queries
from shared.http import error
from shared.runtime import Runtime


def endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    """`GET …/suppressions` of the suppression API."""

    async def suppressions(request: Request, account: str) -> Response:
        """A profile's suppressions in force, soft-bounce count and change history."""
        profile_id = request.path_params["profile_id"]
        found = await queries.profile(rt.db.pool, account, profile_id)
        if found is None:
            return error(404, "profile not found")
        return JSONResponse({"account_id": account, "profile_id": profile_id, **found})

    return rt.auth.guarded(suppressions)
