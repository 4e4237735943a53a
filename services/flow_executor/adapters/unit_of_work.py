"""`ports.FlowWork` over the batch's transaction (`shared.db.work.TransactionWork`): one
PostgreSQL repository on its connection serves every concern of the port, its outbox
takes what the use cases publish (X2), and the executor's privacy SQL is bound to the
same connection for the shared privacy use case (P1)."""

from __future__ import annotations

from services.flow_executor.adapters.privacy import FlowPrivacy
from services.flow_executor.adapters.repository import PostgresFlowRepository
from shared.db.uow import UnitOfWork
from shared.db.work import BoundPrivacy, TransactionWork


class FlowUnitOfWork(TransactionWork):
    """One batch's transaction as the flow executor's use cases see it. `secret` is
    `PRIVACY_HASH_SECRET` (bootstrap always binds it; without it an erase holds by
    profile id only, P2)."""

    def __init__(self, uow: UnitOfWork, secret: str | None = None) -> None:
        super().__init__(uow)
        repository = PostgresFlowRepository(uow.conn)
        self.flows = self.runs = self.reviews = repository
        self.profiles = self.sending = self.erasures = repository
        self.privacy = BoundPrivacy(FlowPrivacy(secret), uow.conn)
        self.secret = secret
