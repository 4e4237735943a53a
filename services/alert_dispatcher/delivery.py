"""The dispatcher's side of the mail worker (`shared.mail_worker.MailHooks`): the worker
claims queued mails and reports final answers in its own units of work, and each hook
runs the matching use case (`handlers.admit`, `handlers.on_final`) over the dispatcher's
work on that transaction, so the outcomes it records go to the same outbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.alert_dispatcher import handlers
from services.alert_dispatcher.ports import AlertWork
from shared.db.uow import UnitOfWork
from shared.ports import QueuedMail


class AlertDelivery:
    """`MailHooks` over the work `work` makes of the worker's unit of work."""

    def __init__(self, work: Callable[[UnitOfWork], AlertWork]) -> None:
        self._work = work

    async def admit(self, uow: UnitOfWork, claimed: Sequence[QueuedMail]) -> set[int]:
        """A5, A8: the claimed mails to send now (`handlers.admit`)."""
        return await handlers.admit(self._work(uow), claimed)

    async def on_final(self, uow: UnitOfWork, finished: Sequence[QueuedMail]) -> None:
        """A6, A9: record the answers and complete the alerts that are done."""
        await handlers.on_final(self._work(uow), finished)
