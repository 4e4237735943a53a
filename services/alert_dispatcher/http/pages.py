"""W1: how an account's recipient pages and mails look and speak (display name, logo,
accent colour, support address, language)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.alert_dispatcher.adapters import queries
from services.alert_dispatcher.ports import AlertWork
from shared.db.uow import UnitOfWork
from shared.http import error
from shared.pages import accounts as page_accounts
from shared.runtime import Runtime

# Settings of the consent service's pages that alert recipients never see.
NOT_HERE = {"list_names", "optout_confirmation_email"}


async def page_settings(
    rt: Runtime, work: Callable[[UnitOfWork], AlertWork], request: Request, account: str
) -> Response:
    """How the account's recipient pages and mails look and speak (W1); PUT sets the
    fields it gives, null clears one."""
    if request.method == "PUT":
        try:
            body = await request.json()
        except ValueError:
            return error(400, "expected a JSON object")
        if not isinstance(body, dict):
            return error(400, "expected a JSON object")
        if unknown := set(body) - (set(page_accounts.FIELDS) - NOT_HERE):
            return error(422, f"unknown settings: {', '.join(sorted(unknown))}")
        if problems := page_accounts.errors(body):
            return error(422, "; ".join(problems))
        async with rt.db.uow() as uow:
            await work(uow).accounts.save_pages(account, body)
            await uow.commit()
    async with rt.db.pool.acquire() as conn:
        view = (await queries.pages(conn, account)).view()
    for name in NOT_HERE:
        del view[name]
    return JSONResponse({"account_id": account, **view})
