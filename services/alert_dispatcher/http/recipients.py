"""The account's alert recipients with their opt-in status (A2) and the actions that
list them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.alert_dispatcher.adapters import queries
from shared.http import iso
from shared.runtime import Runtime


async def recipients(rt: Runtime, request: Request, account: str) -> Response:
    """The account's alert recipients with their opt-in status and the actions that
    list them (A2)."""
    async with rt.db.pool.acquire() as conn:
        rows = await queries.recipients(conn, account)
    return JSONResponse(
        {
            "account_id": account,
            "recipients": [
                {
                    "email": r.email,
                    "status": r.status,
                    "confirmed_at": iso(r.confirmed_at),
                    "disabled_at": iso(r.disabled_at),
                    "actions": r.actions,
                }
                for r in rows
            ],
        }
    )
