"""Operator actions over HTTP become commands on the command topics.

An operator's subscribe, suppress and so on is not applied by the HTTP handler: it is
validated, then written through the outbox to the same topic event producers use, and
answered 202. So it is ordered, deduplicated and audited like every other command.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.contracts import Message, SuppressionCommand, topics, utcnow
from shared.db import Database
from shared.http import error


async def json_body(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object (empty body: `{}`), or the 400 to answer."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return error(400, "body is not JSON")
    if not isinstance(data, dict):
        return error(400, "body must be a JSON object")
    return data


def invalid(exc: ValidationError) -> Response:
    """422 with pydantic's reasons, for a command that does not validate."""
    return error(
        422, "invalid request", details=exc.errors(include_url=False, include_context=False)
    )


def command_id() -> str:
    return f"op-{uuid.uuid4().hex}"


def suppression_command(
    account_id: str, profile: Mapping[str, Any], action: str, body: Mapping[str, Any]
) -> SuppressionCommand:
    """An operator's suppress/unsuppress as a command (raises ValidationError)."""
    return SuppressionCommand(
        command_id=command_id(),
        account_id=account_id,
        profile=dict(profile),
        action=action,  # type: ignore[arg-type]
        reason=body.get("reason", "manual"),
        channel=body.get("channel", "email"),
        list_id=body.get("list_id"),
        occurred_at=utcnow(),
    )


async def queue_command(db: Database, topic: str, key: str, command: Message) -> Response:
    """Write `command` to `topic` through the outbox and answer 202 with its id."""
    async with db.uow() as uow:
        uow.publish(topic, key, command)
        await uow.commit()
    command_id_ = getattr(command, "command_id", None)
    return JSONResponse({"command_id": command_id_, "status": "accepted"}, status_code=202)


ProfileOf = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""(account id, profile id, request body) -> the profile attributes the command carries."""

SUPPRESSION_ACTIONS = ("suppress", "unsuppress")
# The consent acts an operator makes over HTTP (consent service).
OPERATOR_ACTS = ("subscribe", "unsubscribe", "resubscribe")


async def profile_from_body(account_id: str, profile_id: str, body: dict[str, Any]) -> dict:
    """The attributes the caller sent (`profile` in the body)."""
    return dict(body.get("profile") or {})


async def suppression_action(
    db: Database,
    request: Request,
    account_id: str,
    spam_locked: str,
    profile_of: ProfileOf = profile_from_body,
) -> Response:
    """S5: an operator's suppress/unsuppress of the path's profile, validated and queued
    as a `SuppressionCommand` (the caller has checked the API key). The suppression and
    the consent services both serve it, under their own URLs, through this one function;
    `spam_locked` is the 422 text each has always answered for a spam-complaint lift."""
    action = request.path_params["action"]
    if action not in SUPPRESSION_ACTIONS:
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
    return await queue_command(db, topics.SUPPRESSION_COMMANDS, profile_id, cmd)
