"""`ports.AlertWork` in memory, for tests of the use cases that need no database.

Its repositories keep the same rules as the PostgreSQL ones (the contract suite in
tests/component/alert_dispatcher/test_repository_contract.py runs against both) over one
set of `MemoryTables`, which also shows what a use case left behind: `outbox`,
`dead_letters` and the queued `mails`. Nothing is rolled back: the tables play the
transaction, so `bootstrap(settings, MemoryAlertWork)(MemoryTables())` is a work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import Message
from typing import TYPE_CHECKING, Any

from services.alert_dispatcher.domain.limits import Window, window_at
from services.alert_dispatcher.domain.recipients import Recipient, recipient_key
from services.alert_dispatcher.ports import (
    ActionKey,
    AlertAction,
    Asked,
    Delivery,
    NewAlert,
    OpenWindow,
    SendingAlert,
)
from shared.contracts import AlertOutcome, PrivacyRequest
from shared.contracts.base import Message as Contract
from shared.pages.accounts import PageSettings
from shared.ports import OutgoingMail, QueuedMail
from shared.privacy import subject_hashes

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from services.alert_dispatcher.adapters.unit_of_work import Bindings


@dataclass
class StoredMail:
    id: int
    dedupe_key: str
    kind: str
    account_id: str
    rcpt_to: str
    mail_from: str
    message: Message
    status: str = "pending"
    last_error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass
class StoredAlert:
    alert: NewAlert
    status: str = "sending"
    reason: str | None = None


@dataclass
class StoredDelivery:
    delivery: Delivery
    status: str
    error: str | None
    deferred_until: datetime | None = None


@dataclass
class MemoryTables:
    """Everything the in-memory repositories keep, shared by them as tables are."""

    clock: datetime = field(default_factory=lambda: datetime(2025, 1, 6, 10, 0, tzinfo=UTC))
    versions: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    rejections: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)
    actions: dict[ActionKey, tuple[int, AlertAction]] = field(default_factory=dict)
    people: dict[tuple[str, str], Recipient] = field(default_factory=dict)
    asked_at: dict[tuple[str, str], Asked] = field(default_factory=dict)
    page_settings: dict[str, PageSettings] = field(default_factory=dict)
    alerts: dict[str, StoredAlert] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], StoredDelivery] = field(default_factory=dict)
    mails: dict[int, StoredMail] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    windows: dict[tuple[str, datetime], int] = field(default_factory=dict)
    # (topic, key, message, headers asked for: None for those the input carries)
    outbox: list[tuple[str, str | None, Any, Mapping[str, str] | None]] = field(
        default_factory=list
    )
    dead_letters: list[tuple[str, Any, str]] = field(default_factory=list)

    def pending_of(self, mail_id: int) -> StoredDelivery | None:
        for d in self.deliveries.values():
            if d.delivery.mail_id == mail_id and d.status == "pending":
                return d
        return None

    def action_of(self, mail_id: int) -> list[str] | None:
        """The recipients of the action whose alert this mail is for, if it still has one."""
        for d in self.deliveries.values():
            if d.delivery.mail_id == mail_id and d.delivery.alert_id in self.alerts:
                a = self.alerts[d.delivery.alert_id].alert
                found = self.actions.get(ActionKey(a.account_id, a.flow_id, a.step_id))
                return found[1].recipients if found else None
        return None


class _OnTables:
    def __init__(self, tables: MemoryTables) -> None:
        self.t = tables


class MemoryFlows(_OnTables):
    async def delete(self, account_id: str, flow_id: str) -> None:
        t = self.t
        if (account_id, flow_id) in t.versions:
            t.versions[account_id, flow_id] = (t.versions[account_id, flow_id][0], True)
        for key in [k for k in t.actions if (k.account_id, k.flow_id) == (account_id, flow_id)]:
            del t.actions[key]

    async def reject_version(
        self, account_id: str, flow_id: str, version: int, errors: list[str]
    ) -> None:
        self.t.rejections.setdefault((account_id, flow_id, version), list(errors))

    async def take_version(self, account_id: str, flow_id: str, version: int) -> bool:
        current = self.t.versions.get((account_id, flow_id))
        if current is not None and current[0] >= version:
            return False
        self.t.versions[account_id, flow_id] = (version, False)
        return True

    async def actions(self, account_id: str, flow_id: str) -> dict[str, set[str]]:
        return {
            k.step_id: set(a.recipients)
            for k, (_, a) in self.t.actions.items()
            if (k.account_id, k.flow_id) == (account_id, flow_id)
        }

    async def replace_actions(
        self, account_id: str, flow_id: str, version: int, actions: Sequence[AlertAction]
    ) -> None:
        keep = {a.step_id for a in actions}
        for key in list(self.t.actions):
            if (key.account_id, key.flow_id) == (account_id, flow_id) and key.step_id not in keep:
                del self.t.actions[key]
        for a in actions:
            self.t.actions[ActionKey(account_id, flow_id, a.step_id)] = (version, a)

    async def action_recipients(self, keys: set[ActionKey]) -> dict[ActionKey, set[str]]:
        return {k: set(self.t.actions[k][1].recipients) for k in keys if k in self.t.actions}


class MemoryRecipients(_OnTables):
    async def find(
        self, account_id: str, emails: Sequence[str], *, lock: bool = False
    ) -> dict[str, Recipient]:
        people = self.t.people
        return {e: people[account_id, e] for e in sorted(emails) if (account_id, e) in people}

    async def save(self, account_id: str, recipient: Recipient) -> None:
        t, key = self.t, (account_id, recipient.email)
        if recipient.address is None and key in t.people:
            recipient = replace(recipient, address=t.people[key].address)
        t.people[key] = recipient
        if key not in t.asked_at or t.asked_at[key].sender is None:
            # Like `coalesce(asked_at, updated_at)`: not asked yet reads as "now".
            t.asked_at[key] = Asked(t.clock, None)

    async def mark_asked(self, account_id: str, email: str, sender: str) -> None:
        if (account_id, email) in self.t.people:
            self.t.asked_at[account_id, email] = Asked(self.t.clock, sender)

    async def asked(self, account_id: str, email: str) -> Asked | None:
        return self.t.asked_at.get((account_id, email))

    async def states(self, claimed: Sequence[QueuedMail]) -> dict[int, str]:
        states = {}
        for m in claimed:
            email = recipient_key(m.rcpt_to)
            listed = self.t.action_of(m.id)
            if listed is not None and email not in listed:
                states[m.id] = "removed from the alert"
            elif (who := self.t.people.get((m.account_id, email))) is not None:
                states[m.id] = who.status
            else:
                states[m.id] = "not registered"
        return states


class MemoryAccounts(_OnTables):
    async def pages(self, accounts: Sequence[str]) -> dict[str, PageSettings]:
        return {a: self.t.page_settings[a] for a in accounts if a in self.t.page_settings}

    async def save_pages(self, account_id: str, values: dict[str, Any]) -> None:
        current = self.t.page_settings.get(account_id, PageSettings())
        self.t.page_settings[account_id] = replace(current, **values)


class MemoryAlerts(_OnTables):
    async def add(self, alerts: Sequence[NewAlert]) -> None:
        for a in alerts:
            self.t.alerts.setdefault(a.alert_id, StoredAlert(a))

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        used = {d.delivery.mail_id for d in self.t.deliveries.values()} - {None}
        for d in deliveries:
            if (d.alert_id, d.email) in self.t.deliveries or d.mail_id in used:
                continue
            self.t.deliveries[d.alert_id, d.email] = StoredDelivery(d, d.status, d.error)

    async def finish_deliveries(self, answered: Sequence[QueuedMail]) -> list[str]:
        done = []
        for m in answered:
            if (d := self.t.pending_of(m.id)) is not None:
                d.status, d.error = m.status, m.error
                done.append(d.delivery.alert_id)
        return done

    async def lock_sending(self, alert_ids: Sequence[str]) -> list[SendingAlert]:
        alerts = self.t.alerts
        return [
            SendingAlert(a.alert_id, a.account_id, a.flow_id, a.step_id, a.profile_id, a.trace)
            for a in (alerts[i].alert for i in sorted(set(alert_ids)) if i in alerts)
            if alerts[a.alert_id].status == "sending"
        ]

    async def finish_and_lock(self, answered: Sequence[QueuedMail]) -> list[SendingAlert]:
        return await self.lock_sending(await self.finish_deliveries(answered))

    async def delivery_statuses(self, alert_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for (alert_id, email), d in self.t.deliveries.items():
            if alert_id in alert_ids:
                out.setdefault(alert_id, {})[email] = d.status
        return out

    async def complete(self, outcomes: Sequence[AlertOutcome]) -> None:
        for o in outcomes:
            stored = self.t.alerts.get(o.alert_id)
            if stored is not None and stored.status == "sending":
                stored.status, stored.reason = o.type, o.reason


class MemoryMails(_OnTables):
    async def last_sender(self, account_id: str, email: str, kind: str) -> str | None:
        found = [
            m
            for m in self.t.mails.values()
            if (m.account_id, m.rcpt_to, m.kind) == (account_id, email, kind)
        ]
        return max(found, key=lambda m: m.id).mail_from if found else None

    async def cancel(self, refused: Mapping[int, str], reason: str) -> list[str]:
        done = []
        for mail_id, status in refused.items():
            if mail_id in self.t.mails:
                self.t.mails[mail_id].status = "cancelled"
                self.t.mails[mail_id].last_error = reason
            if (d := self.t.pending_of(mail_id)) is not None:
                d.status, d.error = "skipped", f"recipient {status} at send time"
                done.append(d.delivery.alert_id)
        return done

    async def defer(self, mail_ids: Sequence[int], until: datetime) -> None:
        for mail_id in mail_ids:
            if mail_id in self.t.mails:
                self.t.mails[mail_id].next_attempt_at = until
        for d in self.t.deliveries.values():
            if d.delivery.mail_id in mail_ids:
                d.deferred_until = until


class MemoryLimits(_OnTables):
    def __init__(self, tables: MemoryTables, default_limit: int, window_s: int) -> None:
        super().__init__(tables)
        self._default = default_limit
        self._window_s = window_s

    async def current_window(self) -> Window:
        return window_at(self.t.clock, self._window_s)

    async def send_limit(self, account_id: str) -> int:
        return self.t.limits.get(account_id, self._default)

    async def set_send_limit(self, account_id: str, value: int) -> None:
        self.t.limits[account_id] = value

    async def lock_window(self, account_id: str, start: datetime) -> int:
        return self.t.windows.setdefault((account_id, start), 0)

    async def open_window(self, account_id: str) -> OpenWindow:
        window = window_at(self.t.clock, self._window_s)
        used = self.t.windows.setdefault((account_id, window.start), 0)
        return OpenWindow(window, used, self.t.limits.get(account_id, self._default))

    async def count_sent(self, account_id: str, start: datetime, n: int) -> None:
        if (account_id, start) in self.t.windows:
            self.t.windows[account_id, start] += n


class MemoryPrivacy(_OnTables):
    """`shared.privacy_requests.PrivacyStore` over the tables, as `adapters/privacy.py`
    does it on PostgreSQL (alerts found by profile id or subject hash)."""

    service = "alert_dispatcher"

    def __init__(self, tables: MemoryTables, bound: Bindings) -> None:
        super().__init__(tables)
        self._bound = bound

    def _alerts(self, account_id: str, profile_ids: list[str]) -> list[StoredAlert]:
        return [
            s
            for s in self.t.alerts.values()
            if s.alert.account_id == account_id and s.alert.profile_id in profile_ids
        ]

    async def resolve(self, request: PrivacyRequest) -> list[str]:
        ids = {request.profile_id} if request.profile_id else set()
        secret = self._bound.hash_secret
        hashes = set(subject_hashes(secret, request.email, request.phone_number))
        ids |= {
            s.alert.profile_id
            for s in self.t.alerts.values()
            if s.alert.account_id == request.account_id and hashes & set(s.alert.subject_hashes)
        }
        return sorted(ids)

    async def export(self, account_id: str, profile_ids: list[str]) -> dict[str, Any]:
        found = self._alerts(account_id, profile_ids)
        ids = {s.alert.alert_id for s in found}
        return {
            "alerts": [{"alert_id": s.alert.alert_id, "status": s.status} for s in found],
            "deliveries": [
                {"alert_id": a, "recipient": e, "status": d.status}
                for (a, e), d in sorted(self.t.deliveries.items())
                if a in ids
            ],
        }

    async def erase(self, request: PrivacyRequest, profile_ids: list[str]) -> dict[str, int]:
        found = self._alerts(request.account_id, profile_ids)
        ids = {s.alert.alert_id for s in found}
        deliveries = [d for (a, _), d in self.t.deliveries.items() if a in ids]
        for d in deliveries:
            if (mail := self.t.mails.get(d.delivery.mail_id or 0)) is not None:
                mail.message, mail.last_error = Message(), None
                mail.status = "cancelled" if mail.status == "pending" else mail.status
        pending = [d for d in deliveries if d.status == "pending"]
        for d in pending:
            d.status, d.error = "skipped", "profile erased"
        sending = [s for s in found if s.status == "sending"]
        for s in sending:
            s.status, s.reason = "skipped", "profile erased"
        mails = sum(1 for d in deliveries if d.delivery.mail_id in self.t.mails)
        return {"mail_queue": mails, "alert_deliveries": len(pending), "alerts": len(sending)}

    async def drop_unpublished(self, request: PrivacyRequest, profile_ids: list[str]) -> int:
        return 0  # the in-memory outbox is what the tests read; nothing is relayed from it


class MemoryAlertWork:
    """`ports.AlertWork` over `tables`, with what `bootstrap` binds."""

    def __init__(self, tables: MemoryTables, bound: Bindings) -> None:
        self.tables = tables
        self.flows = MemoryFlows(tables)
        self.recipients = MemoryRecipients(tables)
        self.accounts = MemoryAccounts(tables)
        self.alerts = MemoryAlerts(tables)
        self.mails = MemoryMails(tables)
        self.limits = MemoryLimits(tables, bound.send_limit_per_window, bound.send_window_s)
        self.compose = bound.compose
        self.privacy = MemoryPrivacy(tables, bound)
        self._bound = bound

    def subject_hashes(self, email: str | None, phone_number: str | None) -> list[str]:
        return subject_hashes(self._bound.hash_secret, email, phone_number)

    def publish(
        self,
        topic: str,
        key: str | None,
        message: Contract | bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.tables.outbox.append((topic, key, message, headers))

    def dead_letter(self, consumer: str, record: ConsumerRecord, error: str) -> None:
        self.tables.dead_letters.append((consumer, record, error))

    async def queue_mail(self, mails: Sequence[OutgoingMail]) -> dict[str, int]:
        stored = self.tables.mails
        known = {m.dedupe_key for m in stored.values()}
        queued = {}
        for m in mails:
            if m.dedupe_key in known:
                continue
            known.add(m.dedupe_key)
            mail_id = max(stored, default=0) + 1
            stored[mail_id] = StoredMail(
                mail_id, m.dedupe_key, m.kind, m.account_id, m.rcpt_to, m.mail_from, m.message
            )
            queued[m.dedupe_key] = mail_id
        return queued
