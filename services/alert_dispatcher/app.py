"""The alert dispatcher's wiring: consumers, the mail worker, links and the HTTP API."""

from __future__ import annotations

from functools import partial
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from shared.contracts import AlertRequested, topics
from shared.contracts.flows import parse_flow_record
from shared.db.mail_queue import MailWorker
from shared.http import error
from shared.kafka import json_parser
from shared.links import InvalidToken, verify
from shared.mail import SmtpSender
from shared.runtime import Runtime
from services.alert_dispatcher import handlers
from services.alert_dispatcher.adapters import mails
from services.alert_dispatcher.domain.recipients import Recipient, on_confirm, on_unsubscribe


def build(rt: Runtime) -> None:
    rt.consume(
        topics.FLOW_DEFINITIONS,
        lambda r: parse_flow_record(r.key, r.value),
        partial(handlers.save_definitions, settings=rt.settings),
        consumer=handlers.DEFINITIONS,
    )
    rt.consume(
        topics.ALERT_REQUESTS,
        json_parser(AlertRequested),
        partial(handlers.dispatch, settings=rt.settings),
        message_id=lambda r: r.alert_id,
    )

    async def mail_worker() -> None:
        worker = MailWorker(rt.db, SmtpSender(rt.settings), on_final=handlers.on_mails_final)
        await worker.run()

    rt.workers.append(mail_worker)
    rt.routes += link_routes(rt) + api_routes(rt)


def _page(title: str, text: str, status: int = 200) -> HTMLResponse:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def link_routes(rt: Runtime) -> list[Route]:
    secret = rt.settings.link_secret.get_secret_value()

    async def _change(request: Request, purpose: str, decide, done_title: str, done_text: str):
        token = request.query_params.get("token", "")
        try:
            claims = verify(secret, purpose, token)
            account, email, gen = str(claims["a"]), str(claims["e"]), int(claims["g"])
        except (InvalidToken, KeyError, TypeError, ValueError):
            return _page("Invalid link", "This link is not valid. Nothing was changed.", 400)
        async with rt.db.uow() as uow:
            row = await uow.conn.fetchrow(
                "SELECT status, generation FROM recipients WHERE account_id = $1 AND email = $2"
                " FOR UPDATE",
                account, email,
            )
            current = Recipient(email, row["status"], row["generation"]) if row else None
            new = decide(current, gen)
            if new is not None:
                await uow.conn.execute(
                    "UPDATE recipients SET status = $3, updated_at = now(),"
                    " confirmed_at = CASE WHEN $3 = 'confirmed' THEN now() ELSE confirmed_at END,"
                    " disabled_at = CASE WHEN $3 = 'disabled' THEN now() ELSE disabled_at END"
                    " WHERE account_id = $1 AND email = $2",
                    account, email, new.status,
                )
            await uow.commit()
        if current is None:
            return _page("Invalid link", "This link is not valid. Nothing was changed.", 400)
        return _page(done_title, done_text)

    async def confirm(request: Request) -> Response:
        """A4: the confirmation link makes the recipient `confirmed` (idempotent)."""
        return await _change(request, mails.CONFIRM, on_confirm, "Confirmed",
                             "You will receive internal alerts from this account.")

    async def unsubscribe(request: Request) -> Response:
        """A4: the unsubscribe link disables the recipient; POST is RFC 8058 one-click."""
        return await _change(request, mails.UNSUBSCRIBE, on_unsubscribe, "Unsubscribed",
                             "You will no longer receive internal alerts from this account.")

    return [
        Route("/links/recipients/confirm", confirm, methods=["GET"]),
        Route("/links/recipients/unsubscribe", unsubscribe, methods=["GET", "POST"]),
    ]


def api_routes(rt: Runtime) -> list[Route]:
    async def action(request: Request) -> Response:
        """An alert action's "Sent to" list with statuses, and its activity (A4, A6)."""
        account = request.path_params["account_id"]
        if (denied := rt.auth.guard(request, account)) is not None:
            return denied
        flow_id, step_id = request.path_params["flow_id"], request.path_params["step_id"]
        async with rt.db.pool.acquire() as conn:
            act = await conn.fetchrow(
                "SELECT flow_version, mode, recipients FROM alert_actions"
                " WHERE account_id = $1 AND flow_id = $2 AND step_id = $3",
                account, flow_id, step_id,
            )
            rejections = await conn.fetch(
                "SELECT version, errors FROM flow_rejections WHERE account_id = $1 AND flow_id = $2"
                " ORDER BY version DESC LIMIT 10",
                account, flow_id,
            )
            if act is None and not rejections:
                return error(404, "not found")
            statuses = {
                r["email"]: r["status"]
                for r in await conn.fetch(
                    "SELECT email, status FROM recipients WHERE account_id = $1"
                    " AND email = ANY($2::text[])",
                    account, list(act["recipients"]) if act else [],
                )
            }
            counts = await conn.fetch(
                "SELECT status, reason, count(*) AS n FROM alerts WHERE account_id = $1"
                " AND flow_id = $2 AND step_id = $3 GROUP BY status, reason",
                account, flow_id, step_id,
            )
            recent = await conn.fetch(
                "SELECT a.alert_id, a.profile_id, a.status, a.reason, a.requested_at,"
                " coalesce(array_agg(d.email) FILTER (WHERE d.status = 'sent'), '{}') AS sent_to"
                " FROM alerts a LEFT JOIN alert_deliveries d USING (alert_id)"
                " WHERE a.account_id = $1 AND a.flow_id = $2 AND a.step_id = $3"
                " GROUP BY a.alert_id ORDER BY a.requested_at DESC LIMIT 100",
                account, flow_id, step_id,
            )
        return JSONResponse({
            "account_id": account,
            "flow_id": flow_id,
            "step_id": step_id,
            "flow_version": act["flow_version"] if act else None,
            "mode": act["mode"] if act else None,
            "sent_to": [
                {"email": e, "status": statuses.get(e, "unconfirmed")}
                for e in (act["recipients"] if act else [])
            ],
            "rejected_versions": [
                {"version": r["version"], "errors": r["errors"]} for r in rejections
            ],
            "counts": [
                {"status": c["status"], "reason": c["reason"], "count": c["n"]} for c in counts
            ],
            "alerts": [
                {
                    "alert_id": r["alert_id"],
                    "profile_id": r["profile_id"],
                    "status": r["status"],
                    "reason": r["reason"],
                    "sent_to": list(r["sent_to"]),
                    "requested_at": r["requested_at"].isoformat(),
                }
                for r in recent
            ],
        })

    return [Route("/accounts/{account_id}/alerts/{flow_id}/{step_id}", action)]
