"""The consent service's HTTP side: the per-account API (C14, X5, operator actions) and the
link pages a profile clicks (C8, C12), which need no key, only a valid signed token.

Operator actions go through the same path as every producer: the endpoint validates the
request (C11 answers 422 here already), then writes a `ConsentCommand` (or, for
suppressions, a `SuppressionCommand`) through the outbox to the command topic and answers
202 with the command id. Link clicks are applied directly in one transaction, because the
person waits for the page.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from html import escape
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.consent import handlers
from services.consent.adapters import mails
from services.consent.adapters import repository as repo
from services.consent.domain.model import CHANNEL_SLOTS, Act, Policy, ProfileConsent
from services.consent.domain.reachability import can_receive, shown_reasons
from services.consent.domain.rules import decide
from shared.contracts import ConsentCommand, topics, utcnow
from shared.http import error
from shared.links import InvalidToken, verify
from shared.operator import command_id, invalid, json_body, queue_command, suppression_command
from shared.runtime import Runtime

CSV_HEADER = "profile_id,email,email_marketing_consent,consented_at,method,email_suppressions\n"
INVALID = "This link is not valid. Nothing was changed."


def _page(title: str, body_html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>{body_html}"
        "</body></html>",
        status_code=status,
    )


def _text_page(title: str, text: str, status: int = 200) -> HTMLResponse:
    return _page(title, f"<p>{escape(text)}</p>", status)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def link_routes(rt: Runtime) -> list[Route]:
    secret = rt.settings.link_secret.get_secret_value()

    def claims_of(request: Request, purpose: str) -> dict[str, Any] | None:
        try:
            claims = verify(secret, purpose, request.query_params.get("token", ""))
            if not isinstance(claims.get("a"), str) or not isinstance(claims.get("p"), str):
                return None
            return claims
        except InvalidToken:
            return None

    async def known(account: str, profile_id: str) -> bool:
        async with rt.db.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT 1 FROM consent_state WHERE account_id = $1 AND profile_id = $2",
                    account,
                    profile_id,
                )
            )

    async def apply(account: str, profile_id: str, act: Act) -> None:
        async with rt.db.uow() as uow:
            await handlers.apply_acts(
                uow, [handlers.Request(account, profile_id, act)], rt.settings
            )
            await uow.commit()

    def link_act(prefix: str, action: str, claims: dict[str, Any], **extra: Any) -> Act:
        return Act(
            act_id=f"{prefix}:{uuid.uuid4().hex}",
            action=action,  # type: ignore[arg-type]
            channel="email",
            act_at=utcnow(),
            list_id=claims.get("l"),
            scope=str(claims.get("s") or "group"),
            method="link",
            **extra,
        )

    async def confirm(request: Request) -> Response:
        """C8: the click makes the pending subscription `subscribed`; once only."""
        claims = claims_of(request, mails.CONFIRM)
        if claims is None or not isinstance(claims.get("k"), str):
            return _text_page("Invalid link", INVALID, 400)
        async with rt.db.uow() as uow:
            row = await uow.conn.fetchrow(
                "SELECT account_id, profile_id, method FROM confirmations"
                " WHERE confirmation_id = $1",
                claims["k"],
            )
            if row is None or (row["account_id"], row["profile_id"]) != (claims["a"], claims["p"]):
                return _text_page("Invalid link", INVALID, 400)
            if not await repo.claim_confirmation(uow.conn, claims["k"]):
                return _text_page("Already confirmed", "Your subscription is confirmed.")
            act = Act(
                act_id=f"confirm:{claims['k']}",
                action="subscribe",
                channel="email",
                act_at=utcnow(),
                list_id=claims.get("l"),
                scope=str(claims.get("s") or "group"),
                method=row["method"] or "link",
                confirmed=True,
            )
            await handlers.apply_acts(
                uow, [handlers.Request(claims["a"], claims["p"], act)], rt.settings
            )
            await uow.commit()
        return _text_page("Subscription confirmed", "Thank you: you are subscribed.")

    async def unsubscribe(request: Request) -> Response:
        """C12: GET shows a one-button page; POST (the button, or RFC 8058 one-click from
        the mail client) unsubscribes. A repeated POST changes nothing more."""
        claims = claims_of(request, mails.UNSUBSCRIBE)
        if claims is None or not await known(claims["a"], claims["p"]):
            return _text_page("Invalid link", INVALID, 400)
        if request.method == "GET":
            what = f"the list {claims['l']}" if claims.get("l") else "these emails"
            return _page(
                "Unsubscribe",
                f"<p>Stop receiving {escape(what)}?</p>"
                f"<form method='post'><button type='submit'>Unsubscribe</button></form>",
            )
        await apply(
            claims["a"], claims["p"], link_act("unsub", "unsubscribe", claims, clicked=True)
        )
        return _text_page("Unsubscribed", "You will no longer receive these emails.")

    async def preferences(request: Request) -> Response:
        """C12: the preference centre: see and change email and list subscriptions."""
        claims = claims_of(request, mails.PREFERENCES)
        if claims is None or not await known(claims["a"], claims["p"]):
            return _text_page("Invalid link", INVALID, 400)
        account, profile_id = claims["a"], claims["p"]
        message = ""
        if request.method == "POST":
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            choice, list_id = form.get("action"), form.get("list_id") or None
            base = {**claims, "l": list_id, "s": "group"}
            if choice == "unsubscribe":
                act = link_act("pref", "unsubscribe", {**base, "l": None}, clicked=True)
            elif choice == "unsubscribe_list" and list_id:
                act = link_act("pref", "unsubscribe", base, clicked=True)
            elif choice in ("subscribe", "subscribe_list"):
                # The signed link proves the mailbox: this counts as the profile's own
                # confirmation (C11).
                act = link_act(
                    "pref",
                    "subscribe",
                    {**base, "l": list_id if choice == "subscribe_list" else None},
                    confirmed=True,
                )
            else:
                return _text_page("Invalid request", "Unknown choice. Nothing was changed.", 400)
            act = replace(act, method="preference_center")
            await apply(account, profile_id, act)
            message = "<p><strong>Your preferences were saved.</strong></p>"
        async with rt.db.pool.acquire() as conn:
            raw = await conn.fetchval(
                "SELECT state FROM consent_state WHERE account_id = $1 AND profile_id = $2",
                account,
                profile_id,
            )
        state = ProfileConsent.from_json(raw)
        rows = [
            f"<li>Email: {escape(state.status('email'))}"
            f"{_button('unsubscribe', None, 'Unsubscribe from all emails')}"
            f"{_button('subscribe', None, 'Subscribe to emails')}</li>"
        ]
        for list_id, status in state.lists.items():
            rows.append(
                f"<li>List {escape(list_id)}: {escape(status)}"
                f"{_button('unsubscribe_list', list_id, 'Unsubscribe')}"
                f"{_button('subscribe_list', list_id, 'Subscribe')}</li>"
            )
        return _page("Your email preferences", message + "<ul>" + "".join(rows) + "</ul>")

    return [
        Route("/links/consent/confirm", confirm, methods=["GET"]),
        Route("/links/consent/unsubscribe", unsubscribe, methods=["GET", "POST"]),
        Route("/links/consent/preferences", preferences, methods=["GET", "POST"]),
    ]


def _button(action: str, list_id: str | None, label: str) -> str:
    hidden = f"<input type='hidden' name='list_id' value='{escape(list_id)}'>" if list_id else ""
    return (
        f" <form method='post' style='display:inline'>"
        f"<input type='hidden' name='action' value='{escape(action)}'>{hidden}"
        f"<button type='submit'>{escape(label)}</button></form>"
    )


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
                " list_id, scope, evidence, phone_number, recorded_at FROM consent_history"
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
        return JSONResponse(
            mails.profile_links(
                rt.settings, account, request.path_params["profile_id"], scope, q.get("list_id")
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
            )
        except ValidationError as exc:
            return invalid(exc)
        state = ProfileConsent.from_json(row["state"] if row else None)
        outcome = decide(state, handlers.act_from_command(cmd), Policy(), utcnow())
        if outcome.rejection is not None:
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
            unknown = set(body) - set(repo.SETTING_FIELDS)
            if unknown:
                return error(422, f"unknown settings: {', '.join(sorted(unknown))}")
            if "email_double_opt_in" in body and not isinstance(
                body["email_double_opt_in"], bool | None
            ):
                return error(422, "email_double_opt_in must be true, false or null")
            async with rt.db.pool.acquire() as conn:
                await repo.save_account_settings(conn, account, body)
        async with rt.db.pool.acquire() as conn:
            got = (await repo.account_settings(conn, [account])).get(
                account, repo.AccountSettings()
            )
        doi = got.email_double_opt_in
        return JSONResponse(
            {
                "account_id": account,
                "email_double_opt_in": rt.settings.email_double_opt_in if doi is None else doi,
                "from_email": got.from_email or mails.DEFAULT_FROM,
                "sms_reply_stop": got.sms_reply_stop,
                "sms_reply_start": got.sms_reply_start,
                "sms_reply_help": got.sms_reply_help,
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


def _csv(value: str) -> str:
    text = str(value)
    if text[:1] in ("=", "+", "-", "@"):  # no formula injection in spreadsheets
        text = "'" + text
    if any(c in text for c in ',"\n\r'):
        text = '"' + text.replace('"', '""') + '"'
    return text
