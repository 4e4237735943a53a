"""F8: an account's sending window, zone and email quiet hours."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.flow_executor.bootstrap import Executor
from services.flow_executor.domain.sending_window import (
    DEFAULT_SETTINGS,
    settings_view,
    updated_settings,
)
from shared.http import error
from shared.operator import json_body
from shared.runtime import Runtime


def endpoint(rt: Runtime, executor: Executor) -> Callable[[Request], Awaitable[Response]]:
    async def sending_settings(request: Request, account: str) -> Response:
        """F8: the account's sending window, zone and email quiet hours. PUT changes the
        fields it gives (`"08:00"`, `"21:00"`, an IANA zone, true/false); 422 with the
        reason for a bad window or zone."""
        async with rt.db.uow() as uow:
            sending = executor.work(uow).sending
            current = (await sending.sending_settings([account])).get(account, DEFAULT_SETTINGS)
            if request.method == "PUT":
                body = await json_body(request)
                if isinstance(body, Response):
                    return body
                updated = updated_settings(current, body)
                if isinstance(updated, str):
                    return error(422, updated)
                await sending.save_sending_settings(account, updated)
                await uow.commit()
                current = updated
        return JSONResponse({"account_id": account, **settings_view(current)})

    return rt.auth.guarded(sending_settings)
