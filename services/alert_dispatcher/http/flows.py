"""A flow as the dispatcher holds it (A1, A7): the version in force, each alert action's
"Sent to" list, and rejected versions with their reasons."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.alert_dispatcher.adapters import queries
from services.alert_dispatcher.http.views import sent_to
from shared.http import error, iso
from shared.runtime import Runtime


def _state(flow: queries.FlowAlerts) -> str:
    latest_rejected = flow.rejections[0].version if flow.rejections else None
    if flow.deleted:
        return "deleted"
    if latest_rejected is not None and (flow.version is None or latest_rejected > flow.version):
        return "rejected"
    return "active"


async def flow_status(rt: Runtime, request: Request, account: str) -> Response:
    """A flow as the dispatcher holds it: its state (active, rejected, deleted), the
    version in force, rejected versions with their reasons and each alert action's
    "Sent to" list (A1, A7)."""
    flow_id = request.path_params["flow_id"]
    async with rt.db.pool.acquire() as conn:
        flow = await queries.flow_alerts(conn, account, flow_id)
    if flow is None:
        return error(404, "not found")
    return JSONResponse(
        {
            "account_id": account,
            "flow_id": flow_id,
            "status": _state(flow),
            "version": flow.version,
            "rejections": [
                {"version": r.version, "errors": r.errors, "rejected_at": iso(r.rejected_at)}
                for r in flow.rejections
            ],
            "alert_actions": [
                {
                    "step_id": a.step_id,
                    "mode": a.mode,
                    "flow_version": a.flow_version,
                    "sent_to": sent_to(a.recipients, flow.statuses),
                }
                for a in flow.actions
            ],
        }
    )
