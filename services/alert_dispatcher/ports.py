"""The dispatcher's unit of work as its use cases (handlers.py) see it, `AlertWork`: their
only port. It holds the repositories, split by what they keep (flows, recipients, account
settings, alerts, queued mails, the sending limit), the mail composer, the privacy store,
and what every service's work offers (`shared.ports`: publish, dead-letter, queue mail).

`adapters/unit_of_work.py` implements it on the batch's PostgreSQL transaction (the
repositories' writes and the outbox rows commit or roll back together);
`adapters/memory.py` implements it in memory for fast tests. One contract suite
(tests/component/alert_dispatcher/test_repository_contract.py) runs the repositories of
both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any, Protocol

from services.alert_dispatcher.domain.limits import Window
from services.alert_dispatcher.domain.recipients import Recipient
from shared.contracts import AlertOutcome, AlertRequested
from shared.pages.accounts import PageSettings
from shared.ports import MailOutbox, Outbox, QueuedMail
from shared.privacy_requests import PrivacyStore


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


class FlowRepository(Protocol):
    """Flow versions and their alert actions (A1, A3, F1)."""

    async def delete(self, account_id: str, flow_id: str) -> None:
        """The flow is deleted: it has no alert actions any more."""
        ...

    async def reject_version(
        self, account_id: str, flow_id: str, version: int, errors: list[str]
    ) -> None:
        """Record why `version` was refused (shown by the API, A1)."""
        ...

    async def take_version(self, account_id: str, flow_id: str, version: int) -> bool:
        """Make `version` the flow's current one; False if it is not newer."""
        ...

    async def actions(self, account_id: str, flow_id: str) -> dict[str, set[str]]:
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


class RecipientRepository(Protocol):
    """Alert recipients and their opt-in (A2–A4)."""

    async def find(
        self, account_id: str, emails: Sequence[str], *, lock: bool = False
    ) -> dict[str, Recipient]:
        """The known recipients among `emails`, by email (locked until commit if asked)."""
        ...

    async def save(self, account_id: str, recipient: Recipient) -> None:
        """Store the recipient's opt-in; a save without a spelling keeps the known one."""
        ...

    async def mark_asked(self, account_id: str, email: str, sender: str) -> None:
        """A confirmation mail goes out now, from `sender` (C12 expiry)."""
        ...

    async def asked(self, account_id: str, email: str) -> Asked | None: ...

    async def states(self, claimed: Sequence[QueuedMail]) -> dict[int, str]:
        """Each claimed mail's recipient status now, by mail id: `confirmed`,
        `unconfirmed`, `disabled`, `not registered` or `removed from the alert`."""
        ...


class AccountRepository(Protocol):
    """What an account set for its recipients' pages and mails (W1)."""

    async def pages(self, accounts: Sequence[str]) -> dict[str, PageSettings]:
        """Page settings of the accounts that have any."""
        ...

    async def save_pages(self, account_id: str, values: dict[str, Any]) -> None:
        """The account's page settings (checked by the caller)."""
        ...


class AlertRepository(Protocol):
    """Alert requests, each recipient's delivery, and their outcomes (A5, A6, A9)."""

    async def add(self, alerts: Sequence[NewAlert]) -> None:
        """Store alert requests (`sending`) with their trace; one stored before is left
        as it is."""
        ...

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None: ...

    async def finish_deliveries(self, answered: Sequence[QueuedMail]) -> list[str]:
        """Record each pending delivery's final answer; the alerts that had one."""
        ...

    async def lock_sending(self, alert_ids: Sequence[str]) -> list[SendingAlert]:
        """Lock the alerts among `alert_ids` still `sending` (each with its trace)."""
        ...

    async def finish_and_lock(self, answered: Sequence[QueuedMail]) -> list[SendingAlert]:
        """`finish_deliveries`, then `lock_sending` of the alerts it names, together."""
        ...

    async def delivery_statuses(self, alert_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each alert's delivery status by recipient email."""
        ...

    async def complete(self, outcomes: Sequence[AlertOutcome]) -> None:
        """Store the outcome of alerts still `sending` (an alert completes once)."""
        ...


class MailRepository(Protocol):
    """The dispatcher's mails once queued (`queue_mail` queues them)."""

    async def last_sender(self, account_id: str, email: str, kind: str) -> str | None:
        """The sender of the last mail of `kind` queued to `email`."""
        ...

    async def cancel(self, refused: Mapping[int, str], reason: str) -> list[str]:
        """Cancel these mails and mark their pending deliveries skipped with the
        recipient's status; the alerts that had one."""
        ...

    async def defer(self, mail_ids: Sequence[int], until: datetime) -> None:
        """Hold these mails (and show their deliveries waiting) until `until`."""
        ...


@dataclass(frozen=True)
class OpenWindow:
    """An account's sending window with its counter locked (A8): `used` mails counted in
    it so far, against `limit`."""

    window: Window
    used: int
    limit: int


class LimitRepository(Protocol):
    """The accounts' sending limits and what each window has used (A8); the service's
    default limit and window length are bound in."""

    async def current_window(self) -> Window:
        """The sending window the store's clock is in now (every replica reads the same
        clock)."""
        ...

    async def send_limit(self, account_id: str) -> int:
        """The account's own limit per window, else the service's."""
        ...

    async def set_send_limit(self, account_id: str, value: int) -> None: ...

    async def lock_window(self, account_id: str, start: datetime) -> int:
        """Mails counted in the account's window so far, its counter locked until commit."""
        ...

    async def open_window(self, account_id: str) -> OpenWindow:
        """The account's counter in the current window (by the store's clock) created or
        locked until commit, what it counted so far and the account's limit, together."""
        ...

    async def count_sent(self, account_id: str, start: datetime, n: int) -> None: ...


class MailComposer(Protocol):
    """The dispatcher's mails, with the links and Message-IDs its settings sign and name
    (A3–A5, W3)."""

    # The sender of a confirmation nobody asked from a known address (C12), and of one
    # an operator re-sends when no sender is known (A4).
    default_from: str
    operator_from: str

    def confirmation(
        self,
        account_id: str,
        recipient: Recipient,
        from_email: str,
        pages: PageSettings | None,
        renewal: str = "",
    ) -> Message:
        """The mail whose button confirms `recipient` at their current generation."""
        ...

    def alerts(
        self,
        request: AlertRequested,
        recipients: Sequence[Recipient],
        language: str | None,
        parts: tuple[str, str, str],
    ) -> list[Message]:
        """Each recipient's copy of an alert rendered as `parts`, with their own
        unsubscribe link, in the order of `recipients`."""
        ...


class AlertWork(Outbox, MailOutbox, Protocol):
    """Everything the use cases read, write and publish, in one transaction: the
    repositories, the mail composer, the privacy store (P1), and `publish`,
    `dead_letter`, `queue_mail` (`shared.ports`)."""

    flows: FlowRepository
    recipients: RecipientRepository
    accounts: AccountRepository
    alerts: AlertRepository
    mails: MailRepository
    limits: LimitRepository
    compose: MailComposer
    privacy: PrivacyStore

    def subject_hashes(self, email: str | None, phone_number: str | None) -> list[str]:
        """Who triggered an alert, as the keyed hashes it is kept as (P1)."""
        ...
