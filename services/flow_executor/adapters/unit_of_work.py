"""`ports.FlowWork` over the shared unit of work: its transaction's connection carries
the PostgreSQL repository, and its outbox takes what the use cases publish (X2)."""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import ConsumerRecord

from services.flow_executor.adapters.repository import PostgresFlowRepository
from shared.contracts import Message
from shared.db.uow import UnitOfWork
from shared.messaging.batches import dead_letter


class FlowUnitOfWork:
    """One batch's transaction as the flow executor's use cases see it. `secret` is
    `PRIVACY_HASH_SECRET` (the service always passes it; without it an erase holds by
    profile id only, P2)."""

    def __init__(self, uow: UnitOfWork, secret: str | None = None) -> None:
        self.uow = uow
        self.flows = PostgresFlowRepository(uow.conn)
        self.secret = secret

    def publish(
        self,
        topic: str,
        key: str | None,
        message: Message,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.uow.publish(topic, key, message, headers)

    def dead_letter(self, consumer: str, record: ConsumerRecord, error: str) -> None:
        dead_letter(self.uow, consumer, record, error)
