"""`GET /accounts/{account_id}/opt-outs`: the account's email opt-outs in force by level
(C10): group (email unsubscribed), client or user, a page at a time, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.consent.adapters import opt_out_list
from shared.http import error
from shared.runtime import Runtime

LEVELS = ("group", "client", "user")
MOST = 200


def scope_of(slot: str) -> dict[str, str | None]:
    """The level, client and user of an opt-out slot (`email`, `scope:client:C`,
    `scope:user:C/U`)."""
    if slot == "email":
        return {"level": "group", "client_id": None, "user_id": None}
    level, _, rest = slot.removeprefix("scope:").partition(":")
    client, _, user = rest.partition("/") if level == "user" else (rest, "", "")
    return {"level": level, "client_id": client or None, "user_id": user or None}


async def list_opt_outs(rt: Runtime, request: Request, account: str) -> Response:
    """Email opt-outs in force by level (`level`: group, client or user; all when
    absent), newest first; `limit` (default 50, at most 200) and `offset` page them."""
    q = request.query_params
    level = q.get("level", "")
    if level and level not in LEVELS:
        return error(422, f"level must be one of {', '.join(LEVELS)}")
    limit = max(1, min(MOST, int(q.get("limit", "50"))))
    offset = max(0, int(q.get("offset", "0")))
    rows = await opt_out_list.opt_outs(rt.db.pool, account, level, limit, offset)
    return JSONResponse(
        {
            "account_id": account,
            "level": level or None,
            "total": rows[0]["total"] if rows else 0,
            "opt_outs": [
                {
                    "profile_id": r["profile_id"],
                    "email": r["email"],
                    **scope_of(r["slot"]),
                    "since": r["at"],
                    "method": r["method"],
                }
                for r in rows
            ],
        }
    )
