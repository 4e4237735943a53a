"""The dispatcher's HTTP side: the confirm and unsubscribe links recipients click (A4),
and the API marketers read (A1 rejections, A4 "Sent to", A6 activity, A8 limit), scoped
by API key to one account (X5)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alert_dispatcher import handlers
from services.alert_dispatcher.adapters import mails
from services.alert_dispatcher.adapters import repository as repo
from services.alert_dispatcher.domain.recipients import on_confirm, on_unsubscribe
from shared.contracts import utcnow
from shared.http import error
from shared.links import InvalidToken, verify
from shared.pages import Brand, gettext, language_of, page, stylesheet_route, texts
from shared.pages import accounts as page_accounts
from shared.pages.accounts import PageSettings
from shared.runtime import Runtime

PRODUCT = Brand(name="consentflow")


MAX_SEND_LIMIT = 10_000_000


def link_routes(rt: Runtime) -> list[Route]:
    """A4, C12: opening a link (GET, or HEAD) shows a page and changes nothing; the
    page's button (POST) acts, and so does an RFC 8058 one-click POST to the
    `List-Unsubscribe` URL. An expired confirm link offers a new mail."""
    secret = rt.settings.link_keys
    ttl = timedelta(days=rt.settings.confirm_link_ttl_days)
    days = f"{rt.settings.confirm_link_ttl_days:g}"

    def claims_of(request: Request, purpose: str) -> tuple[str, str, int] | None:
        try:
            claims = verify(secret, purpose, request.query_params.get("token", ""))
            return str(claims["a"]), str(claims["e"]), int(claims["g"])
        except (InvalidToken, KeyError, TypeError, ValueError):
            return None

    async def show(
        request: Request,
        account: str | None,
        status: int,
        title: str,
        text: str,
        button: str | None = None,
        action: str = "",
        **values: Any,
    ) -> Response:
        settings = PageSettings()
        if account is not None:
            async with rt.db.pool.acquire() as conn:
                settings = await page_accounts.load(conn, account)
        brand = settings.brand(account) if account is not None else PRODUCT
        lang = language_of(request, settings.language)
        forms = [{"fields": {"action": action}, "label": gettext(lang, button)}] if button else []
        return page(
            "message.html",
            lang,
            brand,
            status,
            title=gettext(lang, title),
            paragraphs=[gettext(lang, text, name=brand.name, days=days, **values)],
            forms=forms,
            links=[],
        )

    async def invalid(request: Request) -> Response:
        return await show(request, None, 400, texts.INVALID_TITLE, texts.INVALID_TEXT)

    async def form_action(request: Request) -> str | None:
        body = await request.body()
        if len(body) > 64 * 1024:
            return None
        return (parse_qs(body.decode("utf-8", "replace")).get("action") or [""])[0]

    async def confirm(request: Request) -> Response:
        """A4: the confirm button makes the recipient `confirmed` (idempotent)."""
        got = claims_of(request, mails.CONFIRM)
        if got is None:
            return await invalid(request)
        account, email, gen = got
        async with rt.db.pool.acquire() as conn:
            current = (await repo.recipients(conn, account, [email])).get(email)
            asked = await repo.asked(conn, account, email)
        peek = on_confirm(current, gen)
        if peek.outcome == "unknown":
            return await invalid(request)
        if peek.outcome == "expired":
            return await show(
                request, account, 410, texts.ALERTS_OUTDATED_TITLE, texts.ALERTS_OUTDATED_TEXT
            )
        if peek.outcome == "unchanged":
            return await show(
                request, account, 200, texts.ALERTS_CONFIRMED_TITLE, texts.ALERTS_ALREADY_TEXT
            )
        action = await form_action(request) if request.method == "POST" else None
        now = utcnow()
        if asked is not None and asked[0] + ttl < now:
            if action == "renew":
                async with rt.db.uow() as uow:
                    await handlers.renew_confirmation(uow.conn, rt.settings, account, email, now)
                    await uow.commit()
                return await show(request, account, 202, texts.RENEWED_TITLE, texts.RENEWED_TEXT)
            return await show(
                request,
                account,
                410,
                texts.EXPIRED_TITLE,
                texts.EXPIRED_TEXT,
                button=texts.SEND_NEW,
                action="renew",
            )
        if request.method != "POST":
            return await show(
                request,
                account,
                200,
                texts.ALERTS_CONFIRM_TITLE,
                texts.ALERTS_CONFIRM_ASK,
                button=texts.ALERTS_CONFIRM_BUTTON,
                action="confirm",
                email=email,
            )
        async with rt.db.uow() as uow:
            result = await handlers.click(uow.conn, account, email, gen, on_confirm)
            await uow.commit()
        if result.outcome in ("changed", "unchanged"):
            text = (
                texts.ALERTS_CONFIRMED_TEXT
                if result.outcome == "changed"
                else texts.ALERTS_ALREADY_TEXT
            )
            return await show(request, account, 200, texts.ALERTS_CONFIRMED_TITLE, text)
        return await show(
            request, account, 410, texts.ALERTS_OUTDATED_TITLE, texts.ALERTS_OUTDATED_TEXT
        )

    async def unsubscribe(request: Request) -> Response:
        """A4: the unsubscribe link disables the recipient. GET only shows a one-button
        page: mail scanners open links in mails, and a GET that unsubscribed would let
        them switch off someone's alerts unseen."""
        got = claims_of(request, mails.UNSUBSCRIBE)
        if got is None:
            return await invalid(request)
        account, email, gen = got
        if request.method != "POST":
            return await show(
                request,
                account,
                200,
                texts.ALERTS_STOP_TITLE,
                texts.ALERTS_STOP_ASK,
                button=texts.ALERTS_STOP_BUTTON,
                action="unsubscribe",
            )
        async with rt.db.uow() as uow:
            result = await handlers.click(uow.conn, account, email, gen, on_unsubscribe)
            await uow.commit()
        if result.outcome == "unknown":
            return await invalid(request)
        return await show(
            request, account, 200, texts.ALERTS_STOPPED_TITLE, texts.ALERTS_STOPPED_TEXT
        )

    return [
        stylesheet_route(),
        Route("/links/recipients/confirm", confirm, methods=["GET", "POST"]),
        Route("/links/recipients/unsubscribe", unsubscribe, methods=["GET", "POST"]),
    ]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def api_routes(rt: Runtime) -> list[Route]:
    def guarded(handler: Any) -> Any:
        async def route(request: Request) -> Response:
            account = request.path_params["account_id"]
            if (denied := rt.auth.guard(request, account)) is not None:
                return denied
            return await handler(request, account)

        return route

    async def _statuses(conn: Any, account: str, emails: list[str]) -> dict[str, str]:
        rows = await conn.fetch(
            "SELECT email, status FROM recipients WHERE account_id = $1"
            " AND email = ANY($2::text[])",
            account,
            emails,
        )
        return {r["email"]: r["status"] for r in rows}

    async def flow_status(request: Request, account: str) -> Response:
        """A flow as this service holds it: the version in force, each alert action's
        "Sent to" list, and rejected versions with their reasons (A1, A7)."""
        flow_id = request.path_params["flow_id"]
        async with rt.db.pool.acquire() as conn:
            current = await conn.fetchrow(
                "SELECT version, deleted FROM flow_versions WHERE account_id = $1 AND flow_id = $2",
                account,
                flow_id,
            )
            rejections = await conn.fetch(
                "SELECT version, errors, rejected_at FROM flow_rejections"
                " WHERE account_id = $1 AND flow_id = $2 ORDER BY version DESC LIMIT 20",
                account,
                flow_id,
            )
            if current is None and not rejections:
                return error(404, "not found")
            actions = await conn.fetch(
                "SELECT step_id, flow_version, mode, recipients FROM alert_actions"
                " WHERE account_id = $1 AND flow_id = $2 ORDER BY step_id",
                account,
                flow_id,
            )
            statuses = await _statuses(conn, account, [e for a in actions for e in a["recipients"]])
        version = current["version"] if current and not current["deleted"] else None
        latest_rejected = rejections[0]["version"] if rejections else None
        if current is not None and current["deleted"]:
            state = "deleted"
        elif latest_rejected is not None and (version is None or latest_rejected > version):
            state = "rejected"
        else:
            state = "active"
        return JSONResponse(
            {
                "account_id": account,
                "flow_id": flow_id,
                "status": state,
                "version": version,
                "rejections": [
                    {
                        "version": r["version"],
                        "errors": r["errors"],
                        "rejected_at": _iso(r["rejected_at"]),
                    }
                    for r in rejections
                ],
                "alert_actions": [
                    {
                        "step_id": a["step_id"],
                        "mode": a["mode"],
                        "flow_version": a["flow_version"],
                        "sent_to": [
                            {"email": e, "status": statuses.get(e, "unconfirmed")}
                            for e in a["recipients"]
                        ],
                    }
                    for a in actions
                ],
            }
        )

    async def _deliveries(conn: Any, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for d in await conn.fetch(
            "SELECT alert_id, email, status, error, deferred_until, completed_at"
            " FROM alert_deliveries WHERE alert_id = ANY($1::text[]) ORDER BY email",
            alert_ids,
        ):
            waiting = d["status"] == "pending" and d["deferred_until"] is not None
            out.setdefault(d["alert_id"], []).append(
                {
                    "email": d["email"],
                    "status": "waiting" if waiting else d["status"],
                    "error": d["error"],
                    "waiting_until": _iso(d["deferred_until"]) if waiting else None,
                    "completed_at": _iso(d["completed_at"]),
                }
            )
        return out

    def _alert_status(row: Any, deliveries: list[dict[str, Any]]) -> str:
        if row["status"] == "sending" and any(d["status"] == "waiting" for d in deliveries):
            return "waiting"
        return str(row["status"])

    async def _alerts(conn: Any, where: str, args: list[Any], limit: int) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            "SELECT alert_id, flow_id, step_id, profile_id, status, reason, requested_at,"
            f" completed_at FROM alerts WHERE {where} ORDER BY requested_at DESC, alert_id"
            f" LIMIT {int(limit)}",
            *args,
        )
        deliveries = await _deliveries(conn, [r["alert_id"] for r in rows])
        return [
            {
                "alert_id": r["alert_id"],
                "flow_id": r["flow_id"],
                "step_id": r["step_id"],
                "profile_id": r["profile_id"],
                "status": _alert_status(r, deliveries.get(r["alert_id"], [])),
                "reason": r["reason"],
                "sent_to": [
                    d["email"] for d in deliveries.get(r["alert_id"], []) if d["status"] == "sent"
                ],
                "deliveries": deliveries.get(r["alert_id"], []),
                "requested_at": _iso(r["requested_at"]),
                "completed_at": _iso(r["completed_at"]),
            }
            for r in rows
        ]

    def _limit(request: Request) -> int:
        try:
            return max(1, min(1000, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return 100

    async def action(request: Request, account: str) -> Response:
        """An alert action: its "Sent to" list with statuses (A4), counts by status and
        reason, and its recent alerts with who got each and which profile triggered it
        (A6). `status` filters the list (`sent`, `skipped`, `failed`, `waiting`, ...)."""
        flow_id, step_id = request.path_params["flow_id"], request.path_params["step_id"]
        wanted = request.query_params.get("status")
        async with rt.db.pool.acquire() as conn:
            act = await conn.fetchrow(
                "SELECT flow_version, mode, recipients FROM alert_actions"
                " WHERE account_id = $1 AND flow_id = $2 AND step_id = $3",
                account,
                flow_id,
                step_id,
            )
            exists = await conn.fetchval(
                "SELECT 1 FROM alerts WHERE account_id = $1 AND flow_id = $2 AND step_id = $3"
                " LIMIT 1",
                account,
                flow_id,
                step_id,
            )
            if act is None and not exists:
                return error(404, "not found")
            recipients = list(act["recipients"]) if act else []
            statuses = await _statuses(conn, account, recipients)
            counts = await conn.fetch(
                "SELECT CASE WHEN a.status = 'sending' AND EXISTS (SELECT 1 FROM alert_deliveries d"
                "   WHERE d.alert_id = a.alert_id AND d.status = 'pending'"
                "   AND d.deferred_until IS NOT NULL) THEN 'waiting' ELSE a.status END AS status,"
                " a.reason, count(*) AS n FROM alerts a"
                " WHERE a.account_id = $1 AND a.flow_id = $2 AND a.step_id = $3"
                " GROUP BY 1, 2 ORDER BY 1, 2",
                account,
                flow_id,
                step_id,
            )
            alerts = await _alerts(
                conn,
                "account_id = $1 AND flow_id = $2 AND step_id = $3",
                [account, flow_id, step_id],
                _limit(request) if not wanted else 1000,
            )
        if wanted:
            alerts = [a for a in alerts if a["status"] == wanted][: _limit(request)]
        totals: dict[str, int] = {}
        for c in counts:
            totals[c["status"]] = totals.get(c["status"], 0) + c["n"]
        return JSONResponse(
            {
                "account_id": account,
                "flow_id": flow_id,
                "step_id": step_id,
                "flow_version": act["flow_version"] if act else None,
                "mode": act["mode"] if act else None,
                "sent_to": [
                    {"email": e, "status": statuses.get(e, "unconfirmed")} for e in recipients
                ],
                "totals": totals,
                "counts": [
                    {"status": c["status"], "reason": c["reason"], "count": c["n"]} for c in counts
                ],
                "alerts": alerts,
            }
        )

    async def activity(request: Request, account: str) -> Response:
        """Recipient activity (A6): for each recent alert in the account, who received it
        (or why not) and which profile triggered it; `email` narrows to one recipient."""
        email = request.query_params.get("email")
        async with rt.db.pool.acquire() as conn:
            if email:
                alerts = await _alerts(
                    conn,
                    "account_id = $1 AND alert_id IN (SELECT alert_id FROM alert_deliveries"
                    " WHERE email = $2)",
                    [account, email.strip().lower()],
                    _limit(request),
                )
            else:
                alerts = await _alerts(conn, "account_id = $1", [account], _limit(request))
        return JSONResponse({"account_id": account, "alerts": alerts})

    async def recipients(request: Request, account: str) -> Response:
        """Every alert recipient of the account with their opt-in status (A2) and the
        actions that list them."""
        async with rt.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT r.email, r.status, r.confirmed_at, r.disabled_at,"
                " coalesce(array_agg(a.flow_id || '/' || a.step_id ORDER BY a.flow_id, a.step_id)"
                "   FILTER (WHERE a.step_id IS NOT NULL), '{}') AS actions"
                " FROM recipients r LEFT JOIN alert_actions a"
                "   ON a.account_id = r.account_id AND r.email = ANY(a.recipients)"
                " WHERE r.account_id = $1 GROUP BY r.email, r.status, r.confirmed_at,"
                " r.disabled_at ORDER BY r.email",
                account,
            )
        return JSONResponse(
            {
                "account_id": account,
                "recipients": [
                    {
                        "email": r["email"],
                        "status": r["status"],
                        "confirmed_at": _iso(r["confirmed_at"]),
                        "disabled_at": _iso(r["disabled_at"]),
                        "actions": list(r["actions"]),
                    }
                    for r in rows
                ],
            }
        )

    async def page_settings(request: Request, account: str) -> Response:
        """W1: how this account's recipient pages and mails look and speak (display
        name, logo, accent colour, support address, language)."""
        if request.method == "PUT":
            try:
                body = await request.json()
            except ValueError:
                return error(400, "expected a JSON object")
            if not isinstance(body, dict):
                return error(400, "expected a JSON object")
            allowed = set(page_accounts.FIELDS) - {"list_names", "optout_confirmation_email"}
            if unknown := set(body) - allowed:
                return error(422, f"unknown settings: {', '.join(sorted(unknown))}")
            if problems := page_accounts.errors(body):
                return error(422, "; ".join(problems))
            async with rt.db.uow() as uow:
                await page_accounts.save(uow.conn, account, body)
                await uow.commit()
        async with rt.db.pool.acquire() as conn:
            got = await page_accounts.load(conn, account)
        view = got.view()
        del view["list_names"], view["optout_confirmation_email"]
        return JSONResponse({"account_id": account, **view})

    async def limits(request: Request, account: str) -> Response:
        """A8: the account's alert sending limit per hour (PUT to change it), and how many
        alert mails are waiting for a later window."""
        if request.method == "PUT":
            try:
                body = await request.json()
                value = body["alert_send_limit_per_hour"]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError
            except (ValueError, KeyError, TypeError, RecursionError):
                return error(
                    400,
                    f'expected {{"alert_send_limit_per_hour": <integer 1 to {MAX_SEND_LIMIT}>}}',
                )
            if not 1 <= value <= MAX_SEND_LIMIT:
                # A limit of 0 would hold every alert forever (A8 says none is dropped,
                # so they would only ever wait): refused with the reason instead.
                return error(
                    422,
                    f"alert_send_limit_per_hour must be 1 to {MAX_SEND_LIMIT}, got {value}",
                )
            async with rt.db.uow() as uow:
                await uow.conn.execute(
                    "INSERT INTO account_limits (account_id, alert_send_limit_per_hour)"
                    " VALUES ($1, $2) ON CONFLICT (account_id) DO UPDATE SET"
                    " alert_send_limit_per_hour = EXCLUDED.alert_send_limit_per_hour,"
                    " updated_at = now()",
                    account,
                    value,
                )
                await uow.commit()
        async with rt.db.pool.acquire() as conn:
            own = await conn.fetchval(
                "SELECT alert_send_limit_per_hour FROM account_limits WHERE account_id = $1",
                account,
            )
            waiting = await conn.fetchval(
                "SELECT count(*) FROM mail_queue WHERE account_id = $1 AND kind = $2"
                " AND status = 'pending' AND next_attempt_at > now()",
                account,
                handlers.ALERT,
            )
        return JSONResponse(
            {
                "account_id": account,
                "alert_send_limit_per_hour": rt.settings.alert_send_limit_per_hour
                if own is None
                else own,
                "window_s": rt.settings.alert_send_window_s,
                "waiting_mails": waiting,
            }
        )

    return [
        Route("/accounts/{account_id}/flows/{flow_id}/alerts", guarded(flow_status)),
        Route("/accounts/{account_id}/alerts/{flow_id}/{step_id}", guarded(action)),
        Route("/accounts/{account_id}/alert-activity", guarded(activity)),
        Route("/accounts/{account_id}/alert-recipients", guarded(recipients)),
        Route("/accounts/{account_id}/alert-settings", guarded(limits), methods=["GET", "PUT"]),
        Route(
            "/accounts/{account_id}/alert-pages",
            guarded(page_settings),
            methods=["GET", "PUT"],
        ),
    ]
