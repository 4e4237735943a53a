"""What every service's unit of work offers its use cases, whatever stands behind it (the
batch's PostgreSQL transaction, or the fakes of the unit tests): publish an output
through the outbox, dead-letter an input with its reason (X1), queue a mail (W3, A3).
A service's own `ports.py` adds its repositories to these.

Use cases and domain code import this module, never the adapters (`shared.db`,
`shared.messaging`): the architecture test holds them to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message as MailMessage
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from shared.contracts.base import Message


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: int
    dedupe_key: str
    kind: str
    account_id: str
    rcpt_to: str
    attempts: int
    status: str = "sending"
    error: str | None = None


@dataclass(frozen=True)
class OutgoingMail:
    """A mail to queue: `dedupe_key` says what it is about, so queuing it twice (a
    redelivered message) queues it once."""

    dedupe_key: str
    kind: str
    account_id: str
    message: MailMessage
    mail_from: str
    rcpt_to: str


class Outbox(Protocol):
    """Outputs of the batch, published once its transaction commits (X2)."""

    def publish(
        self,
        topic: str,
        key: str | None,
        message: Message | bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue `message` for `topic` under `key`; it carries the trace of the input
        with the same key unless `headers` are given."""

    def dead_letter(self, consumer: str, record: ConsumerRecord, error: str) -> None:
        """Send `record` to its topic's dead-letter topic with `error` (X1)."""


class MailOutbox(Protocol):
    """Mails of the batch, queued in its transaction and sent by the mail worker."""

    async def queue_mail(self, mails: Sequence[OutgoingMail]) -> dict[str, int]:
        """Queue `mails` (a dedupe key queued before is skipped); the id of each mail
        queued now, by dedupe key."""
