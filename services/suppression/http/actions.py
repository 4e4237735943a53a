"""Operator suppress / unsuppress (S5), owned by the suppression service.

The consent service serves the same action under its own base URL; it forwards to
`operator_action` here, so both URLs share one implementation and answer alike. The
request is validated (S5 answers 422), then written through the outbox to
`suppression-commands` like any producer's command (202).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from services.suppression.domain.rules import SPAM_LOCKED
from shared.contracts import topics
from shared.http import error
from shared.operator import invalid, json_body, queue_command, suppression_command
from shared.runtime import Runtime

ProfileOf = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""(account id, profile id, request body) -> the profile attributes the command carries."""

ACTIONS = ("suppress", "unsuppress")


async def profile_from_body(account_id: str, profile_id: str, body: dict[str, Any]) -> dict:
    """The attributes the caller sent (`profile` in the body)."""
    return dict(body.get("profile") or {})


async def operator_action(
    rt: Runtime,
    request: Request,
    account_id: str,
    profile_of: ProfileOf = profile_from_body,
    spam_locked: str = SPAM_LOCKED,
) -> Response:
    """Validate an operator's suppress/unsuppress of the path's profile and queue it as
    a `SuppressionCommand` (the caller has checked the API key)."""
    action = request.path_params["action"]
    if action not in ACTIONS:
        return error(404, "not found")
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    if action == "unsuppress" and body.get("reason") == "spam_complaint":
        return error(422, spam_locked)
    profile_id = request.path_params["profile_id"]
    profile = {**(await profile_of(account_id, profile_id, body)), "id": profile_id}
    try:
        cmd = suppression_command(account_id, profile, action, body)
    except ValidationError as exc:
        return invalid(exc)
    return await queue_command(rt.db, topics.SUPPRESSION_COMMANDS, profile_id, cmd)


def endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    """`POST …/suppressions/{action}` of the suppression API."""

    async def action(request: Request) -> Response:
        """Operator suppress / unsuppress (S5)."""
        account = request.path_params["account_id"]
        if (denied := rt.auth.guard(request, account)) is not None:
            return denied
        return await operator_action(rt, request, account)

    return action
