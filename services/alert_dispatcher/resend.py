"""An operator re-sends a recipient's confirmation mail (A2, A4): the same link as the
last one (same generation), so an earlier mail keeps working too; only unconfirmed
recipients get one."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alert_dispatcher import handlers
from services.alert_dispatcher.domain.recipients import alert_addresses
from services.alert_dispatcher.ports import AlertWork
from shared.db.uow import UnitOfWork
from shared.http import error
from shared.runtime import Runtime


def routes(rt: Runtime, work: Callable[[UnitOfWork], AlertWork]) -> list[Route]:
    async def resend(request: Request, account: str) -> Response:
        """Re-send an unconfirmed recipient's confirmation mail, with the same link as
        the last one (A2, A4)."""
        folded = list(alert_addresses([request.path_params["email"]]))
        if not folded:
            return error(422, "not a valid email address")
        email = folded[0]
        async with rt.db.uow() as uow:
            done = await handlers.resend_confirmation(work(uow), account, email, uuid.uuid4().hex)
            await uow.commit()
        if done.recipient is None:
            return error(404, "no such alert recipient")
        if done.mail_id is None:
            return error(409, f"recipient is {done.recipient.status}")
        return JSONResponse(
            {"email": email, "status": "queued", "mail_id": done.mail_id}, status_code=202
        )

    return [
        Route(
            "/accounts/{account_id}/alert-recipients/{email}/resend",
            rt.auth.guarded(resend),
            methods=["POST"],
        )
    ]
