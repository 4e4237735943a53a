"""Alerts as marketers read them: one alert action's "Sent to" list, counts and recent
alerts (A4, A6), and the account's recipient activity (A6)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.alert_dispatcher.adapters import queries
from services.alert_dispatcher.domain.recipients import recipient_key
from services.alert_dispatcher.http import views
from shared.http import error
from shared.runtime import Runtime


def _limit(request: Request) -> int:
    try:
        return max(1, min(1000, int(request.query_params.get("limit", "100"))))
    except ValueError:
        return 100


async def action(rt: Runtime, request: Request, account: str) -> Response:
    """An alert action: its "Sent to" list with statuses (A4), counts by status and
    reason, and its recent alerts with who got each and which profile triggered it
    (A6). `status` filters the list (`sent`, `skipped`, `failed`, `waiting`, ...)."""
    flow_id, step_id = request.path_params["flow_id"], request.path_params["step_id"]
    wanted = request.query_params.get("status")
    limit = _limit(request) if not wanted else 1000
    async with rt.db.pool.acquire() as conn:
        got = await queries.action_alerts(conn, account, flow_id, step_id, limit)
    if got is None:
        return error(404, "not found")
    alerts = [views.alert(a) for a in got.alerts]
    if wanted:
        alerts = [a for a in alerts if a["status"] == wanted][: _limit(request)]
    totals: dict[str, int] = {}
    for c in got.counts:
        totals[c.status] = totals.get(c.status, 0) + c.count
    act = got.action
    return JSONResponse(
        {
            "account_id": account,
            "flow_id": flow_id,
            "step_id": step_id,
            "flow_version": act.flow_version if act else None,
            "mode": act.mode if act else None,
            "sent_to": views.sent_to(act.recipients if act else [], got.statuses),
            "totals": totals,
            "counts": [
                {"status": c.status, "reason": c.reason, "count": c.count} for c in got.counts
            ],
            "alerts": alerts,
        }
    )


async def activity(rt: Runtime, request: Request, account: str) -> Response:
    """Recipient activity (A6): for each recent alert in the account, who received it
    (or why not) and which profile triggered it; `email` narrows to one recipient."""
    email = request.query_params.get("email")
    async with rt.db.pool.acquire() as conn:
        alerts = await queries.activity(
            conn, account, recipient_key(email) if email else None, _limit(request)
        )
    return JSONResponse({"account_id": account, "alerts": [views.alert(a) for a in alerts]})
