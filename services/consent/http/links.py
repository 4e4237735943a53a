"""Signed links for a profile, to put in a mail (C12)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.consent.adapters import mails
from services.consent.domain.rules import SCOPED_LIST
from shared.http import error
from shared.runtime import Runtime


async def profile_links(rt: Runtime, request: Request, account: str) -> Response:
    """Signed unsubscribe and preference links to put in a mail to the profile (C12)."""
    q = request.query_params
    scope = q.get("scope", "group")
    if scope != "group" and q.get("list_id"):
        return error(422, SCOPED_LIST)
    return JSONResponse(
        mails.profile_links(
            rt.settings,
            account,
            request.path_params["profile_id"],
            scope,
            q.get("list_id"),
            q.get("client_id"),
            q.get("user_id"),
        )
    )
