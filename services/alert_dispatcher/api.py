"""The dispatcher's HTTP side: the confirm and unsubscribe links recipients click (A4),
and the API marketers read (A1 rejections, A4 "Sent to", A6 activity, A8 limit), scoped
by API key to one account (X5)."""

from __future__ import annotations

from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from services.alert_dispatcher import handlers
from services.alert_dispatcher.adapters import mails
from services.alert_dispatcher.domain.recipients import on_confirm, on_unsubscribe
from shared.http import error
from shared.links import InvalidToken, verify
from shared.runtime import Runtime

_PAGES = {
    ("confirm", "changed"): (
        200,
        "Confirmed",
        "You will receive internal alerts from this account.",
    ),
    ("confirm", "unchanged"): (
        200,
        "Confirmed",
        "You already receive internal alerts from this account.",
    ),
    ("confirm", "expired"): (
        410,
        "Link expired",
        "This confirmation link is no longer valid. Ask to be added again to receive a new one.",
    ),
    ("unsubscribe", "changed"): (
        200,
        "Unsubscribed",
        "You will no longer receive internal alerts from this account.",
    ),
    ("unsubscribe", "unchanged"): (
        200,
        "Unsubscribed",
        "You will no longer receive internal alerts from this account.",
    ),
}
_INVALID = (400, "Invalid link", "This link is not valid. Nothing was changed.")


def _page(status: int, title: str, text: str, button: str | None = None) -> HTMLResponse:
    """A small HTML page; with `button`, a form that POSTs back to the same URL."""
    form = (
        f"<form method='post'><button type='submit'>{escape(button)}</button></form>"
        if button
        else ""
    )
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p>{form}</body></html>"
    )
    return HTMLResponse(body, status_code=status)


def link_routes(rt: Runtime) -> list[Route]:
    secret = rt.settings.link_secret.get_secret_value()

    async def _click(request: Request, purpose: str, kind: str, decide: Any) -> Response:
        token = request.query_params.get("token", "")
        try:
            claims = verify(secret, purpose, token)
            account, email, gen = str(claims["a"]), str(claims["e"]), int(claims["g"])
        except (InvalidToken, KeyError, TypeError, ValueError):
            return _page(*_INVALID)
        async with rt.db.uow() as uow:
            result = await handlers.click(uow.conn, account, email, gen, decide)
            await uow.commit()
        return _page(*_PAGES.get((kind, result.outcome), _INVALID))

    async def confirm(request: Request) -> Response:
        """A4: the confirmation link makes the recipient `confirmed` (idempotent)."""
        return await _click(request, mails.CONFIRM, "confirm", on_confirm)

    async def unsubscribe(request: Request) -> Response:
        """A4: the unsubscribe link disables the recipient. GET only shows a one-button
        page: mail scanners open links in mails, and a GET that unsubscribed would let
        them switch off someone's alerts unseen. POST (the button, or RFC 8058 one-click
        from the mail client) disables."""
        if request.method == "GET":
            try:
                verify(secret, mails.UNSUBSCRIBE, request.query_params.get("token", ""))
            except InvalidToken:
                return _page(*_INVALID)
            return _page(
                200,
                "Stop internal alerts",
                "Stop receiving internal alerts from this account?",
                button="Unsubscribe",
            )
        return await _click(request, mails.UNSUBSCRIBE, "unsubscribe", on_unsubscribe)

    return [
        Route("/links/recipients/confirm", confirm, methods=["GET"]),
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

    async def limits(request: Request, account: str) -> Response:
        """A8: the account's alert sending limit per hour (PUT to change it), and how many
        alert mails are waiting for a later window."""
        if request.method == "PUT":
            try:
                body = await request.json()
                value = int(body["alert_send_limit_per_hour"])
                if value < 0:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return error(400, 'expected {"alert_send_limit_per_hour": <integer >= 0>}')
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
    ]
