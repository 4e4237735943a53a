"""A8: an account's alert sending limit per hour, and the alert mails waiting for a
later window."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.alert_dispatcher.adapters import queries
from services.alert_dispatcher.handlers import ALERT
from services.alert_dispatcher.ports import AlertWork
from shared.db.uow import UnitOfWork
from shared.http import error
from shared.runtime import Runtime

MAX_SEND_LIMIT = 10_000_000


async def _new_limit(request: Request) -> int | Response:
    """The limit a PUT asks for, or the answer that refuses it."""
    try:
        body = await request.json()
        value = body["alert_send_limit_per_hour"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):
        return error(
            400, f'expected {{"alert_send_limit_per_hour": <integer 1 to {MAX_SEND_LIMIT}>}}'
        )
    if not 1 <= value <= MAX_SEND_LIMIT:
        # A limit of 0 would hold every alert forever (A8 says none is dropped, so they
        # would only ever wait): refused with the reason instead.
        return error(422, f"alert_send_limit_per_hour must be 1 to {MAX_SEND_LIMIT}, got {value}")
    return value


async def limits(
    rt: Runtime, work: Callable[[UnitOfWork], AlertWork], request: Request, account: str
) -> Response:
    """The account's alert sending limit per hour and the alert mails waiting for a later
    window (A8); PUT sets the limit."""
    if request.method == "PUT":
        value = await _new_limit(request)
        if isinstance(value, Response):
            return value
        async with rt.db.uow() as uow:
            await work(uow).limits.set_send_limit(account, value)
            await uow.commit()
    async with rt.db.pool.acquire() as conn:
        own = await queries.own_send_limit(conn, account)
        waiting = await queries.waiting_mails(conn, account, ALERT)
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
