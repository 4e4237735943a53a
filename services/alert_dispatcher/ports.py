"""What the dispatcher's use cases (handlers.py, delivery.py) need from the outside world,
as `typing.Protocol`s, and the small records that cross them.

`adapters/repository.py` implements `AlertStore` on PostgreSQL through one unit of work
(its writes and the outbox rows commit or roll back together);
`adapters/memory.py` implements it in memory for fast tests. One contract suite
(tests/component/alert_dispatcher/test_repository_contract.py) runs against both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.alert_dispatcher.domain.recipients import Recipient
from shared.contracts import AlertOutcome
from shared.pages.accounts import PageSettings
from shared.ports import OutgoingMail, QueuedMail


@dataclass(frozen=True)
class AlertAction:
    """An alert step of a flow version as this service keeps it: recipients folded (A1)."""

    step_id: str
    mode: str
    recipients: list[str]


@dataclass(frozen=True, order=True)
class ActionKey:
    account_id: str
    flow_id: str
    step_id: str


@dataclass(frozen=True)
class NewAlert:
    """An alert request as stored: who triggered it is kept only as keyed hashes (P1)."""

    alert_id: str
    account_id: str
    flow_id: str
    flow_version: int
    step_id: str
    profile_id: str
    requested_at: datetime
    subject_hashes: list[str]
    # The request's correlation id and trace context, for the outcome recorded later (X4).
    trace: Mapping[str, str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Delivery:
    """One recipient's part of an alert: `pending` while its mail (`mail_id`) is queued,
    or `skipped` at once with the reason."""

    alert_id: str
    email: str
    mail_id: int | None
    status: str
    error: str | None = None


@dataclass(frozen=True)
class SendingAlert:
    """An alert whose mails are not all done yet."""

    alert_id: str
    account_id: str
    flow_id: str
    step_id: str
    profile_id: str
    trace: Mapping[str, str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Asked:
    """When, and from which address, a recipient was last asked to confirm (C12)."""

    at: datetime
    sender: str | None


class FlowStore(Protocol):
    """Flow versions and their alert actions (A1, A3, F1)."""

    async def delete_flow(self, account_id: str, flow_id: str) -> None: ...

    async def reject_version(
        self, account_id: str, flow_id: str, version: int, errors: list[str]
    ) -> None: ...

    async def take_version(self, account_id: str, flow_id: str, version: int) -> bool:
        """Make `version` the flow's current one; False if it is not newer."""
        ...

    async def flow_actions(self, account_id: str, flow_id: str) -> dict[str, set[str]]:
        """The recipients of each alert step the flow has now, by step id."""
        ...

    async def replace_actions(
        self, account_id: str, flow_id: str, version: int, actions: Sequence[AlertAction]
    ) -> None:
        """The flow's alert actions become `actions` (others are removed)."""
        ...

    async def action_recipients(self, keys: set[ActionKey]) -> dict[ActionKey, set[str]]:
        """The recipients each action has now; an action not (or no longer) known is absent."""
        ...


class RecipientStore(Protocol):
    """Alert recipients and their opt-in (A2–A4)."""

    async def recipients(
        self, account_id: str, emails: Sequence[str], *, lock: bool = False
    ) -> dict[str, Recipient]: ...

    async def save_recipient(self, account_id: str, recipient: Recipient) -> None: ...

    async def mark_asked(self, account_id: str, email: str, sender: str) -> None: ...

    async def asked(self, account_id: str, email: str) -> Asked | None: ...

    async def pages(self, accounts: Sequence[str]) -> dict[str, PageSettings]:
        """Page settings of the accounts that have any (W1)."""
        ...


class AlertStore(FlowStore, RecipientStore, Protocol):
    """Everything the use cases read and write, in one transaction."""

    async def add_alerts(self, alerts: Sequence[NewAlert]) -> None:
        """Store alert requests (`sending`) with their trace; one stored before is left
        as it is."""
        ...

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None: ...

    async def queue_mails(self, mails: Sequence[OutgoingMail]) -> dict[str, int]:
        """Queue mails once per dedupe key; the ids of those queued now, by dedupe key."""
        ...

    async def last_sender(self, account_id: str, email: str, kind: str) -> str | None: ...

    async def finish_deliveries(self, answered: Sequence[QueuedMail]) -> list[str]:
        """Record each pending delivery's final answer; the alerts that had one."""
        ...

    async def recipient_states(self, claimed: Sequence[QueuedMail]) -> dict[int, str]:
        """Each claimed mail's recipient status now, by mail id: `confirmed`,
        `unconfirmed`, `disabled`, `not registered` or `removed from the alert`."""
        ...

    async def skip_mails(self, refused: Mapping[int, str], reason: str) -> list[str]:
        """Cancel these mails and mark their pending deliveries skipped with the
        recipient's status; the alerts that had one."""
        ...

    async def lock_sending(self, alert_ids: Sequence[str]) -> list[SendingAlert]:
        """Lock the alerts among `alert_ids` still `sending` (each with its trace)."""
        ...

    async def delivery_statuses(self, alert_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each alert's delivery status by recipient email."""
        ...

    async def complete_alerts(self, outcomes: Sequence[AlertOutcome]) -> None:
        """Store the outcome of alerts still `sending` (an alert completes once)."""
        ...

    def publish_outcome(
        self, outcome: AlertOutcome, headers: Mapping[str, str] | None = None
    ) -> None:
        """Write the outcome to `alert-outcomes` through the outbox (same transaction),
        with `headers` (the request's trace) or, without them, those the batch carries."""
        ...

    def dead_letter(self, consumer: str, record: Any, error: str) -> None:
        """Send an input record to its dead-letter topic through the outbox."""
        ...

    async def now(self) -> datetime: ...

    async def send_limit(self, account_id: str, default: int) -> int: ...

    async def lock_window(self, account_id: str, start: datetime) -> int:
        """Mails counted in the account's window so far, its counter locked until commit."""
        ...

    async def count_sent(self, account_id: str, start: datetime, n: int) -> None: ...

    async def defer(self, mail_ids: Sequence[int], until: datetime) -> None:
        """Hold these mails (and show their deliveries waiting) until `until`."""
        ...
