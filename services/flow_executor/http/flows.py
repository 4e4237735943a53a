"""`GET /accounts/{account_id}/flows`: the account's flows as the executor holds them,
one page at a time, each with its steps (id, type, alert mode), so that a reader can go
from the list to a flow's activity and its alert actions."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.flow_executor.adapters import flow_list
from shared.http import iso
from shared.runtime import Runtime

MOST = 200


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def flow_view(row: Any) -> dict[str, Any]:
    """One flow of the list: its name, version, trigger and steps."""
    steps = _json(row["steps"]) or []
    return {
        "flow_id": row["flow_id"],
        "name": row["name"],
        "version": row["version"],
        "deleted": row["deleted"],
        "updated_at": iso(row["updated_at"]),
        "trigger": _json(row["trigger"]),
        "steps": [
            {"id": s.get("id"), "type": s.get("type"), "mode": s.get("mode")}
            for s in steps
            if isinstance(s, dict)
        ],
    }


def endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def list_flows(request: Request, account: str) -> Response:
        """The account's flows in id order (`limit`, default 50; `after` continues from
        the previous page's `next_after`; `flow_id` answers that one flow only)."""
        try:
            limit = max(1, min(MOST, int(request.query_params.get("limit", "50"))))
        except ValueError:
            limit = 50
        after = request.query_params.get("after", "")
        async with rt.db.pool.acquire() as conn:
            only = request.query_params.get("flow_id") or None
            rows = await flow_list.flows(conn, account, after, limit, only)
        flows = [flow_view(r) for r in rows]
        return JSONResponse(
            {
                "account_id": account,
                "flows": flows,
                "next_after": flows[-1]["flow_id"] if len(flows) == limit else None,
            }
        )

    return rt.auth.guarded(list_flows)
