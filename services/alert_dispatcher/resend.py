"""An operator re-sends a recipient's confirmation mail (A2, A4): the same link as the
last one (same generation), so an earlier mail keeps working too; only unconfirmed
recipients get one."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alert_dispatcher import handlers
from services.alert_dispatcher.adapters import mails
from services.alert_dispatcher.adapters import repository as repo
from shared.db import mail_queue
from shared.domain.flow_rules import alert_recipients
from shared.http import error
from shared.runtime import Runtime


def routes(rt: Runtime) -> list[Route]:
    async def resend(request: Request) -> Response:
        account = request.path_params["account_id"]
        if (denied := rt.auth.guard(request, account)) is not None:
            return denied
        folded = alert_recipients([request.path_params["email"]])
        if not folded:
            return error(422, "not a valid email address")
        email = folded[0]
        async with rt.db.uow() as uow:
            current = (await repo.recipients(uow.conn, account, [email], lock=True)).get(email)
            if current is None:
                return error(404, "no such alert recipient")
            if current.status != "unconfirmed":
                return error(409, f"recipient is {current.status}")
            sender = await repo.last_confirmation_sender(
                uow.conn, account, email, handlers.CONFIRMATION
            )
            sender = sender or rt.settings.smtp_username or "alerts@localhost"
            queued = await mail_queue.enqueue_many(
                uow.conn,
                [
                    mail_queue.OutgoingMail(
                        dedupe_key=f"confirm:{account}:{email}:{current.generation}:"
                        f"resend:{uuid.uuid4().hex}",
                        kind=handlers.CONFIRMATION,
                        account_id=account,
                        message=mails.confirmation(
                            rt.settings, account, email, current.generation, sender
                        ),
                        mail_from=sender,
                        rcpt_to=email,
                    )
                ],
            )
            await uow.commit()
        return JSONResponse(
            {"email": email, "status": "queued", "mail_id": next(iter(queued.values()))},
            status_code=202,
        )

    return [
        Route("/accounts/{account_id}/alert-recipients/{email}/resend", resend, methods=["POST"])
    ]
