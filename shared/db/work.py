"""The part of every service's unit of work that is the same everywhere (`shared.ports`):
publishing through the outbox, dead-lettering and queuing mail, over the batch's
transaction (`shared.db.uow.UnitOfWork`). A service's work (`services/<name>/adapters/`)
extends it with its repositories, bound to the same connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import asyncpg
from aiokafka import ConsumerRecord

from shared.contracts import PrivacyRequest, topics
from shared.contracts.base import Message
from shared.db import mail_queue, outbox_erasure
from shared.db.uow import UnitOfWork
from shared.messaging.batches import dead_letter
from shared.ports import OutgoingMail


class TransactionWork:
    """`shared.ports.Outbox` and `MailOutbox` over one transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    @property
    def conn(self) -> asyncpg.Connection:
        """The transaction's connection, for the service's repositories."""
        return self.uow.conn

    def publish(
        self,
        topic: str,
        key: str | None,
        message: Message | bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.uow.publish(topic, key, message, headers)

    def dead_letter(self, consumer: str, record: ConsumerRecord, error: str) -> None:
        dead_letter(self.uow, consumer, record, error)

    async def queue_mail(self, mails: Sequence[OutgoingMail]) -> dict[str, int]:
        return await mail_queue.enqueue_many(self.uow.conn, mails)


class ConnectionPrivacy(Protocol):
    """A service's privacy SQL (`services/<name>/adapters/privacy.py`), statement by
    statement on a connection it is given."""

    service: str

    async def resolve(self, conn: asyncpg.Connection, request: PrivacyRequest) -> list[str]: ...

    async def export(
        self, conn: asyncpg.Connection, account_id: str, profile_ids: list[str]
    ) -> dict[str, Any]: ...

    async def erase(
        self, conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
    ) -> dict[str, int]: ...


class BoundPrivacy:
    """`shared.privacy_requests.PrivacyStore` over one transaction: a service's privacy
    SQL bound to its connection, and the unpublished outbox rows about the person."""

    def __init__(self, sql: ConnectionPrivacy, conn: asyncpg.Connection) -> None:
        self.sql = sql
        self.conn = conn
        self.service = sql.service

    async def resolve(self, request: PrivacyRequest) -> list[str]:
        return await self.sql.resolve(self.conn, request)

    async def export(self, account_id: str, profile_ids: list[str]) -> dict[str, Any]:
        return await self.sql.export(self.conn, account_id, profile_ids)

    async def erase(self, request: PrivacyRequest, profile_ids: list[str]) -> dict[str, int]:
        return await self.sql.erase(self.conn, request, profile_ids)

    async def drop_unpublished(self, request: PrivacyRequest, profile_ids: list[str]) -> int:
        keys = [i.encode() for i in profile_ids] + [
            v.encode() for v in (request.email, request.phone_number) if v
        ]
        return await outbox_erasure.delete_unpublished(self.conn, keys, topics.PRIVACY_RESULTS)
