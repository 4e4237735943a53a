"""The consent service's per-account API (C14, X5, operator actions, account settings).
The link pages a profile clicks are in `pages.py`.

Operator actions go through the same path as every producer: the endpoint validates the
request (C11 answers 422 here already), then writes a `ConsentCommand` (or, for
suppressions, a `SuppressionCommand`) through the outbox to the command topic and answers
202 with the command id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.consent import handlers
from services.consent.adapters import mails
from services.consent.adapters import repository as repo
from services.consent.domain.model import CHANNEL_SLOTS, Policy, ProfileConsent
from services.consent.domain.reachability import can_receive, shown_reasons
from services.consent.domain.rules import SCOPED_LIST, decide
from shared.addresses import email_error
from shared.contracts import ConsentCommand, topics, utcnow
from shared.http import error
from shared.operator import command_id, invalid, json_body, queue_command, suppression_command
from shared.pages import accounts as page_accounts
from shared.runtime import Runtime

CSV_HEADER = "profile_id,email,email_marketing_consent,consented_at,method,email_suppressions\n"


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def profile_view(
    state: ProfileConsent,
    suppressions: list[dict[str, Any]],
    list_id: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """C14: per channel status, timestamps, method, `can_receive` and suppression reasons."""
    view = state.view()
    channels = {}
    for key in CHANNEL_SLOTS:
        ch = view[key]
        sup_channel = "sms" if key.startswith("sms") else key
        channels[key] = {
            "status": ch["status"],
            "consented_at": _iso(ch["consented_at"]),
            "method": ch["method"],
            "phone_number": ch["phone_number"],
            "can_receive": can_receive(state, suppressions, key, list_id, client_id, user_id),
            "suppressions": shown_reasons(suppressions, sup_channel) if key != "push" else [],
        }
    return {
        "channels": channels,
        "lists": view["lists"],
        "opt_outs": view["opt_outs"],
        "phone_number": state.phone_number,
    }


def api_routes(rt: Runtime) -> list[Route]:
    def guarded(fn):
        async def wrapper(request: Request) -> Response:
            account = request.path_params["account_id"]
            if (denied := rt.auth.guard(request, account)) is not None:
                return denied
            return await fn(request, account)

        wrapper.__name__ = fn.__name__
        return wrapper

    async def load(account: str, profile_id: str) -> tuple[Any, list[dict[str, Any]]]:
        async with rt.db.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT state, profile FROM consent_state"
                " WHERE account_id = $1 AND profile_id = $2",
                account,
                profile_id,
            )
            sups = (await repo.suppressions(conn, [(account, profile_id)])).get(
                (account, profile_id), []
            )
        return row, sups

    @guarded
    async def consent(request: Request, account: str) -> Response:
        """C14: a profile's consent per channel with can_receive (S6) and suppressions."""
        profile_id = request.path_params["profile_id"]
        row, sups = await load(account, profile_id)
        if row is None and not sups:
            return error(404, "profile not found")
        state = ProfileConsent.from_json(row["state"] if row else None)
        q = request.query_params
        async with rt.db.pool.acquire() as conn:
            pending = await conn.fetch(
                "SELECT confirmation_id, list_id, scope, requested_at FROM confirmations"
                " WHERE account_id = $1 AND profile_id = $2 AND confirmed_at IS NULL"
                " ORDER BY requested_at",
                account,
                profile_id,
            )
        return JSONResponse(
            {
                "account_id": account,
                "profile_id": profile_id,
                "profile": row["profile"] if row else {},
                **profile_view(state, sups, q.get("list_id"), q.get("client_id"), q.get("user_id")),
                "pending_confirmations": [
                    {
                        "list_id": p["list_id"],
                        "scope": p["scope"],
                        "requested_at": p["requested_at"].isoformat(),
                    }
                    for p in pending
                ],
            }
        )

    @guarded
    async def history(request: Request, account: str) -> Response:
        """C2: the append-only audit trail of a profile, oldest first."""
        profile_id = request.path_params["profile_id"]
        async with rt.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT slot, action, result, status, consented_at, act_at, method, act_id,"
                " list_id, scope, evidence, phone_number, actor, claimed_at, reason,"
                " recorded_at FROM consent_history"
                " WHERE account_id = $1 AND profile_id = $2 ORDER BY id LIMIT 10000",
                account,
                profile_id,
            )
        return JSONResponse(
            {
                "account_id": account,
                "profile_id": profile_id,
                "history": [{k: _iso(v) for k, v in dict(r).items()} for r in rows],
            }
        )

    @guarded
    async def links(request: Request, account: str) -> Response:
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

    @guarded
    async def consent_action(request: Request, account: str) -> Response:
        """Operator subscribe / unsubscribe / resubscribe (C11: evidence or 422)."""
        profile_id = request.path_params["profile_id"]
        action = request.path_params["action"]
        if action not in ("subscribe", "unsubscribe", "resubscribe"):
            return error(404, "not found")
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        row, _ = await load(account, profile_id)
        profile = {
            **(row["profile"] if row else {}),
            **(body.get("profile") or {}),
            "id": profile_id,
        }
        try:
            cmd = ConsentCommand(
                command_id=command_id(),
                account_id=account,
                profile=profile,
                action=action,
                channel=body.get("channel", "email"),
                purpose=body.get("purpose", "marketing"),
                list_id=body.get("list_id"),
                method=body.get("method", "manual"),
                scope=body.get("scope") or {},
                evidence=body.get("evidence"),
                consented_at=utcnow(),
                actor=rt.auth.actor(request),
            )
        except ValidationError as exc:
            return invalid(exc)
        state = ProfileConsent.from_json(row["state"] if row else None)
        act = handlers.act_from_command(cmd)
        outcome = decide(state, act, Policy(), utcnow())
        if outcome.rejection is not None:
            # C11, X3a: kept in history as rejected, answered 422, nothing queued.
            async with rt.db.uow() as uow:
                await repo.append_history(
                    uow.conn, [(account, profile_id, h) for h in outcome.history]
                )
                await uow.commit()
            return error(422, outcome.rejection)
        return await queue_command(rt.db, topics.CONSENT_COMMANDS, profile_id, cmd)

    @guarded
    async def suppression_action(request: Request, account: str) -> Response:
        """Operator suppress / unsuppress, sent to the suppression service (S5)."""
        profile_id = request.path_params["profile_id"]
        action = request.path_params["action"]
        if action not in ("suppress", "unsuppress"):
            return error(404, "not found")
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if action == "unsuppress" and body.get("reason") == "spam_complaint":
            return error(
                422, "S5: a spam complaint is lifted only by a re-subscribe with evidence (C11)"
            )
        row, _ = await load(account, profile_id)
        profile = {**(row["profile"] if row else {}), "id": profile_id}
        try:
            cmd = suppression_command(account, profile, action, body)
        except ValidationError as exc:
            return invalid(exc)
        return await queue_command(rt.db, topics.SUPPRESSION_COMMANDS, profile_id, cmd)

    @guarded
    async def export_csv(request: Request, account: str) -> Response:
        """C14: email-marketing consent per profile, suppressions as a separate column."""

        async def rows() -> AsyncIterator[str]:
            yield CSV_HEADER
            async with rt.db.pool.acquire() as conn, conn.transaction():
                async for r in conn.cursor(
                    "SELECT s.profile_id, s.email, s.email_status, s.email_consented_at,"
                    " s.email_method, coalesce(v.suppressions, '[]'::jsonb) AS sups"
                    " FROM consent_state s LEFT JOIN suppression_view v"
                    " USING (account_id, profile_id) WHERE s.account_id = $1"
                    " ORDER BY s.profile_id",
                    account,
                    prefetch=1000,
                ):
                    reasons = ";".join(
                        f"{x['reason']}" + (f"@{x['list_id']}" if x["list_id"] else "")
                        for x in shown_reasons(r["sups"], "email")
                    )
                    yield (
                        ",".join(
                            _csv(v)
                            for v in (
                                r["profile_id"],
                                r["email"] or "",
                                r["email_status"],
                                _iso(r["email_consented_at"]) or "",
                                r["email_method"] or "",
                                reasons,
                            )
                        )
                        + "\n"
                    )

        return StreamingResponse(
            rows(),
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="{account}-consent.csv"'},
        )

    @guarded
    async def not_opted_in(request: Request, account: str) -> Response:
        """C14: profiles reachable by email that never subscribed."""
        limit = min(int(request.query_params.get("limit", "1000")), 10_000)
        after = request.query_params.get("after", "")
        async with rt.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT s.profile_id, s.email FROM consent_state s LEFT JOIN suppression_view v"
                " USING (account_id, profile_id)"
                " WHERE s.account_id = $1 AND s.profile_id > $2 AND s.email IS NOT NULL"
                " AND s.email_status = 'never_subscribed'"
                " AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements("
                "   coalesce(v.suppressions, '[]'::jsonb)) e"
                "   WHERE coalesce(e->>'channel', 'email') = 'email'"
                "   AND (e->>'list_id') IS NULL)"
                " ORDER BY s.profile_id LIMIT $3",
                account,
                after,
                limit,
            )
        return JSONResponse(
            {
                "account_id": account,
                "segment": "not_opted_in",
                "profiles": [{"profile_id": r["profile_id"], "email": r["email"]} for r in rows],
                "next_after": rows[-1]["profile_id"] if len(rows) == limit else None,
            }
        )

    @guarded
    async def account_settings(request: Request, account: str) -> Response:
        """Per-account double opt-in (C8), sender address and SMS replies (C13)."""
        if request.method == "PUT":
            body = await json_body(request)
            if isinstance(body, Response):
                return body
            unknown = set(body) - set(repo.SETTING_FIELDS) - set(page_accounts.FIELDS)
            if unknown:
                return error(422, f"unknown settings: {', '.join(sorted(unknown))}")
            page_values = {k: v for k, v in body.items() if k in page_accounts.FIELDS}
            if problems := page_accounts.errors(page_values):
                return error(422, "; ".join(problems))
            if "email_double_opt_in" in body and not isinstance(
                body["email_double_opt_in"], bool | None
            ):
                return error(422, "email_double_opt_in must be true, false or null")
            if (problem := settings_problem(body)) is not None:
                return error(422, problem)
            if isinstance(body.get("from_email"), str):
                body["from_email"] = body["from_email"].strip()
            async with rt.db.uow() as uow:
                await repo.save_account_settings(
                    uow.conn, account, {k: v for k, v in body.items() if k in repo.SETTING_FIELDS}
                )
                await page_accounts.save(uow.conn, account, page_values)
                await uow.commit()
        async with rt.db.pool.acquire() as conn:
            got = (await repo.account_settings(conn, [account])).get(
                account, repo.AccountSettings()
            )
            pages = await page_accounts.load(conn, account)
        doi = got.email_double_opt_in
        return JSONResponse(
            {
                "account_id": account,
                "email_double_opt_in": rt.settings.email_double_opt_in if doi is None else doi,
                "from_email": got.from_email or mails.DEFAULT_FROM,
                "sms_reply_stop": got.sms_reply_stop,
                "sms_reply_start": got.sms_reply_start,
                "sms_reply_help": got.sms_reply_help,
                **pages.view(),
            }
        )

    base = "/accounts/{account_id}"
    prof = base + "/profiles/{profile_id}"
    return [
        Route(prof + "/consent", consent, methods=["GET"]),
        Route(prof + "/consent/history", history, methods=["GET"]),
        Route(prof + "/consent/{action}", consent_action, methods=["POST"]),
        Route(prof + "/suppressions/{action}", suppression_action, methods=["POST"]),
        Route(prof + "/links", links, methods=["GET"]),
        Route(base + "/consent/export.csv", export_csv, methods=["GET"]),
        Route(base + "/segments/not-opted-in", not_opted_in, methods=["GET"]),
        Route(base + "/consent/settings", account_settings, methods=["GET", "PUT"]),
    ]


def settings_problem(body: dict[str, Any]) -> str | None:
    """Why account settings cannot be saved, or None. The sender address goes into every
    confirmation mail's envelope and From header, so it is checked here, once, rather
    than failing (or worse, injecting headers) in the mail worker later."""
    sender = body.get("from_email")
    if sender is not None:
        if not isinstance(sender, str):
            return "from_email must be an email address or null"
        if problem := email_error(sender):
            return f"from_email {sender!r} is not a valid email address: {problem}"
    for field in ("sms_reply_stop", "sms_reply_start", "sms_reply_help"):
        value = body.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > 640):
            return f"{field} must be a text of at most 640 characters, or null"
    return None


def _csv(value: str) -> str:
    text = str(value)
    if text[:1] in ("=", "+", "-", "@"):  # no formula injection in spreadsheets
        text = "'" + text
    if any(c in text for c in ',"\n\r'):
        text = '"' + text.replace('"', '""') + '"'
    return text
