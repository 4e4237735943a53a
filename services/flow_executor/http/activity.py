"""The activity of a flow per step (A6 with the dispatcher's sent/skipped)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.flow_executor.adapters import read_model
from services.flow_executor.domain.sending_window import WAITING_QUIET_HOURS
from shared.http import error, iso
from shared.runtime import Runtime

MAX_LIST = 1000


def limit_of(request: Request) -> int:
    """`?limit=`: how many entries a list shows (1 to 1000, 100 by default)."""
    try:
        return max(1, min(MAX_LIST, int(request.query_params.get("limit", "100"))))
    except ValueError:
        return 100


def _waiting(w: Any) -> dict[str, Any]:
    """A profile waiting at a step: on a delay, or (F8) a message step waiting for the
    sending window (`reason` `Waiting: quiet hours`, `due_at` the release time)."""
    return {
        "profile_id": w["profile_id"],
        "run_id": str(w["run_id"]),
        "due_at": iso(w["due_at"]),
        "reason": WAITING_QUIET_HOURS if w["kind"] == "quiet_hours" else None,
    }


def activity_document(account_id: str, flow_id: str, found: dict[str, Any]) -> dict[str, Any]:
    """The activity of one flow per step (A6 with the dispatcher's sent/skipped)."""
    steps: dict[str, dict[str, Any]] = {}

    def step(step_id: str) -> dict[str, Any]:
        return steps.setdefault(
            step_id,
            {
                "scheduled": {"count": 0, "profiles": []},
                "in_review": {"count": 0, "alerts": []},
                "executed": {"count": 0, "profiles": []},
                "skipped": {"count": 0, "reasons": []},
            },
        )

    flow = found["flow"]
    for s in (flow["definition"] or {}).get("steps", []) if flow else []:
        step(s["id"])["type"] = s["type"]
    for w in found["waiting"]:
        s = step(w["step_id"])["scheduled"]
        s["count"] = w["n"]
        s["profiles"].append(_waiting(w))
    for p in found["passed"]:
        step(p["step_id"])["delay_passed"] = p["n"]
    for h in found["held"]:
        s = step(h["step_id"])["in_review"]
        s["count"] = h["n"]
        s["alerts"].append(
            {
                "alert_id": h["alert_id"],
                "profile_id": h["profile_id"],
                "held_at": iso(h["created_at"]),
            }
        )
    reasons: dict[tuple[str, str], dict[str, Any]] = {}
    for o in found["outcomes"]:
        s = step(o["step_id"])
        if o["outcome"] == "executed":
            s["executed"]["count"] = o["n"]
            s["executed"]["profiles"].append(o["profile_id"])
            continue
        key = (o["step_id"], o["reason"])
        if key not in reasons:
            reasons[key] = {"reason": o["reason"], "count": o["n"], "profiles": []}
            s["skipped"]["reasons"].append(reasons[key])
            s["skipped"]["count"] += o["n"]
        reasons[key]["profiles"].append(o["profile_id"])
    return {
        "account_id": account_id,
        "flow_id": flow_id,
        "version": flow["version"] if flow else None,
        "deleted": flow["deleted"] if flow else None,
        "rejected_versions": [
            {"version": r["version"], "errors": r["errors"]} for r in found["rejections"]
        ],
        "steps": steps,
    }


def endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def activity(request: Request, account: str) -> Response:
        """Per step of a flow: profiles waiting on a delay, actions in review, executed,
        and skipped by reason, each with its count and the newest entries (`?limit=`)."""
        flow_id = request.path_params["flow_id"]
        async with rt.db.pool.acquire() as conn:
            found = await read_model.flow_activity(conn, account, flow_id, limit_of(request))
        if found is None:
            return error(404, "not found")
        return JSONResponse(activity_document(account, flow_id, found))

    return rt.auth.guarded(activity)
