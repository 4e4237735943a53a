"""The suppression service's wiring: consumers of `suppression-commands` and
`consent-changes`, and its HTTP API (a profile's suppressions; operator actions)."""

from __future__ import annotations

from functools import partial

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.suppression import handlers
from services.suppression.domain.rules import SPAM_LOCKED
from shared.contracts import ConsentChanged, PrivacyRequest, SuppressionCommand, topics
from shared.http import error
from shared.kafka import json_parser
from shared.operator import invalid, json_body, queue_command, suppression_command
from shared.privacy_requests import message_id
from shared.runtime import Runtime


def build(rt: Runtime) -> None:
    rt.consume(
        topics.SUPPRESSION_COMMANDS,
        json_parser(SuppressionCommand),
        partial(handlers.on_commands, settings=rt.settings),
        message_id=lambda c: f"{c.account_id}:{c.command_id}",
        consumer=handlers.COMMANDS,
    )
    rt.consume(
        topics.CONSENT_CHANGES,
        json_parser(ConsentChanged),
        handlers.on_consent_changes,
        message_id=lambda c: c.change_id,
        consumer=handlers.CONSENT,
    )
    rt.consume(
        topics.PRIVACY_REQUESTS,
        json_parser(PrivacyRequest),
        handlers.on_privacy_requests,
        message_id=message_id,
        consumer=handlers.PRIVACY,
    )
    rt.routes += api_routes(rt)


def api_routes(rt: Runtime) -> list[Route]:
    async def suppressions(request: Request) -> Response:
        """A profile's suppressions in force, soft-bounce count and change history (S1–S6)."""
        account = request.path_params["account_id"]
        if (denied := rt.auth.guard(request, account)) is not None:
            return denied
        profile_id = request.path_params["profile_id"]
        async with rt.db.pool.acquire() as conn:
            prof = await conn.fetchrow(
                "SELECT soft_bounces, list_bounces FROM suppression_profiles"
                " WHERE account_id = $1 AND profile_id = $2",
                account,
                profile_id,
            )
            rows = await conn.fetch(
                "SELECT channel, reason, nullif(list_key, '') AS list_id, since, command_id"
                " FROM suppressions WHERE account_id = $1 AND profile_id = $2 ORDER BY since",
                account,
                profile_id,
            )
            hist = await conn.fetch(
                "SELECT change, channel, reason, list_id, source, recorded_at"
                " FROM suppression_history WHERE account_id = $1 AND profile_id = $2"
                " ORDER BY id LIMIT 1000",
                account,
                profile_id,
            )
        if prof is None:
            return error(404, "profile not found")
        return JSONResponse(
            {
                "account_id": account,
                "profile_id": profile_id,
                "soft_bounces": prof["soft_bounces"],
                "list_soft_bounces": prof["list_bounces"] or {},
                "suppressions": [
                    {
                        "channel": r["channel"],
                        "reason": r["reason"],
                        "list_id": r["list_id"],
                        "since": r["since"].isoformat(),
                        "command_id": r["command_id"],
                    }
                    for r in rows
                ],
                "history": [{**dict(h), "recorded_at": h["recorded_at"].isoformat()} for h in hist],
            }
        )

    async def action(request: Request) -> Response:
        """Operator suppress / unsuppress: validated here (S5 answers 422), then written
        through the outbox to `suppression-commands` like any producer's command (202)."""
        account = request.path_params["account_id"]
        if (denied := rt.auth.guard(request, account)) is not None:
            return denied
        kind = request.path_params["action"]
        if kind not in ("suppress", "unsuppress"):
            return error(404, "not found")
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if kind == "unsuppress" and body.get("reason") == "spam_complaint":
            return error(422, SPAM_LOCKED)
        profile_id = request.path_params["profile_id"]
        profile = {**(body.get("profile") or {}), "id": profile_id}
        try:
            cmd = suppression_command(account, profile, kind, body)
        except ValidationError as exc:
            return invalid(exc)
        return await queue_command(rt.db, topics.SUPPRESSION_COMMANDS, profile_id, cmd)

    prof = "/accounts/{account_id}/profiles/{profile_id}/suppressions"
    return [
        Route(prof, suppressions, methods=["GET"]),
        Route(prof + "/{action}", action, methods=["POST"]),
    ]
