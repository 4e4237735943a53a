"""`ports.AlertStore` in memory, for tests of the use cases that need no database.

It keeps the same rules as the PostgreSQL store (the contract suite in
tests/component/alert_dispatcher/test_repository_contract.py runs against both), and
shows what a use case left behind: `outbox`, `dead_letters` and the queued `mails`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import Message
from typing import Any

from services.alert_dispatcher.domain.recipients import Recipient, recipient_key
from services.alert_dispatcher.ports import (
    ActionKey,
    AlertAction,
    Asked,
    Delivery,
    NewAlert,
    SendingAlert,
)
from shared.contracts import AlertOutcome, topics
from shared.pages.accounts import PageSettings
from shared.ports import OutgoingMail, QueuedMail


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


class MemoryAlertStore:
    def __init__(self, clock: datetime | None = None) -> None:
        self.clock = clock or datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
        self.versions: dict[tuple[str, str], tuple[int, bool]] = {}
        self.rejections: dict[tuple[str, str, int], list[str]] = {}
        self.actions: dict[ActionKey, tuple[int, AlertAction]] = {}
        self.people: dict[tuple[str, str], Recipient] = {}
        self.asked_at: dict[tuple[str, str], Asked] = {}
        self.page_settings: dict[str, PageSettings] = {}
        self.alerts: dict[str, StoredAlert] = {}
        self.deliveries: dict[tuple[str, str], StoredDelivery] = {}
        self.mails: dict[int, StoredMail] = {}
        self.limits: dict[str, int] = {}
        self.windows: dict[tuple[str, datetime], int] = {}
        self.outbox: list[tuple[str, str | None, Any]] = []
        # The headers asked for with each outcome, by alert id (None: the batch's own).
        self.outbox_headers: list[tuple[str, Mapping[str, str] | None]] = []
        self.dead_letters: list[tuple[str, Any, str]] = []

    # --- flows ---------------------------------------------------------------------------

    async def delete_flow(self, account_id: str, flow_id: str) -> None:
        if (account_id, flow_id) in self.versions:
            self.versions[account_id, flow_id] = (self.versions[account_id, flow_id][0], True)
        for key in [k for k in self.actions if (k.account_id, k.flow_id) == (account_id, flow_id)]:
            del self.actions[key]

    async def reject_version(
        self, account_id: str, flow_id: str, version: int, errors: list[str]
    ) -> None:
        self.rejections.setdefault((account_id, flow_id, version), list(errors))

    async def take_version(self, account_id: str, flow_id: str, version: int) -> bool:
        current = self.versions.get((account_id, flow_id))
        if current is not None and current[0] >= version:
            return False
        self.versions[account_id, flow_id] = (version, False)
        return True

    async def flow_actions(self, account_id: str, flow_id: str) -> dict[str, set[str]]:
        return {
            k.step_id: set(a.recipients)
            for k, (_, a) in self.actions.items()
            if (k.account_id, k.flow_id) == (account_id, flow_id)
        }

    async def replace_actions(
        self, account_id: str, flow_id: str, version: int, actions: Sequence[AlertAction]
    ) -> None:
        keep = {a.step_id for a in actions}
        for key in list(self.actions):
            if (key.account_id, key.flow_id) == (account_id, flow_id) and key.step_id not in keep:
                del self.actions[key]
        for a in actions:
            self.actions[ActionKey(account_id, flow_id, a.step_id)] = (version, a)

    async def action_recipients(self, keys: set[ActionKey]) -> dict[ActionKey, set[str]]:
        return {k: set(self.actions[k][1].recipients) for k in keys if k in self.actions}

    # --- recipients ----------------------------------------------------------------------

    async def recipients(
        self, account_id: str, emails: Sequence[str], *, lock: bool = False
    ) -> dict[str, Recipient]:
        return {
            e: self.people[account_id, e] for e in sorted(emails) if (account_id, e) in self.people
        }

    async def save_recipient(self, account_id: str, recipient: Recipient) -> None:
        key = (account_id, recipient.email)
        if recipient.address is None and key in self.people:
            recipient = replace(recipient, address=self.people[key].address)
        self.people[key] = recipient
        if key not in self.asked_at or self.asked_at[key].sender is None:
            # Like `coalesce(asked_at, updated_at)`: not asked yet reads as "now".
            self.asked_at[key] = Asked(self.clock, None)

    async def mark_asked(self, account_id: str, email: str, sender: str) -> None:
        if (account_id, email) in self.people:
            self.asked_at[account_id, email] = Asked(self.clock, sender)

    async def asked(self, account_id: str, email: str) -> Asked | None:
        return self.asked_at.get((account_id, email))

    async def pages(self, accounts: Sequence[str]) -> dict[str, PageSettings]:
        return {a: self.page_settings[a] for a in accounts if a in self.page_settings}

    async def save_pages(self, account_id: str, values: dict[str, Any]) -> None:
        current = self.page_settings.get(account_id, PageSettings())
        self.page_settings[account_id] = replace(current, **values)

    async def set_send_limit(self, account_id: str, value: int) -> None:
        self.limits[account_id] = value

    # --- alerts and their mails ----------------------------------------------------------

    async def add_alerts(self, alerts: Sequence[NewAlert]) -> None:
        for a in alerts:
            self.alerts.setdefault(a.alert_id, StoredAlert(a))

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        used = {d.delivery.mail_id for d in self.deliveries.values()} - {None}
        for d in deliveries:
            if (d.alert_id, d.email) in self.deliveries or d.mail_id in used:
                continue
            self.deliveries[d.alert_id, d.email] = StoredDelivery(d, d.status, d.error)

    async def queue_mails(self, mails: Sequence[OutgoingMail]) -> dict[str, int]:
        known = {m.dedupe_key for m in self.mails.values()}
        queued = {}
        for m in mails:
            if m.dedupe_key in known:
                continue
            known.add(m.dedupe_key)
            mail_id = max(self.mails, default=0) + 1
            self.mails[mail_id] = StoredMail(
                mail_id, m.dedupe_key, m.kind, m.account_id, m.rcpt_to, m.mail_from, m.message
            )
            queued[m.dedupe_key] = mail_id
        return queued

    async def last_sender(self, account_id: str, email: str, kind: str) -> str | None:
        found = [
            m
            for m in self.mails.values()
            if (m.account_id, m.rcpt_to, m.kind) == (account_id, email, kind)
        ]
        return max(found, key=lambda m: m.id).mail_from if found else None

    def _pending_of(self, mail_id: int) -> StoredDelivery | None:
        for d in self.deliveries.values():
            if d.delivery.mail_id == mail_id and d.status == "pending":
                return d
        return None

    async def finish_deliveries(self, answered: Sequence[QueuedMail]) -> list[str]:
        done = []
        for m in answered:
            if (d := self._pending_of(m.id)) is not None:
                d.status, d.error = m.status, m.error
                done.append(d.delivery.alert_id)
        return done

    async def recipient_states(self, claimed: Sequence[QueuedMail]) -> dict[int, str]:
        states = {}
        for m in claimed:
            email = recipient_key(m.rcpt_to)
            listed = self._action_of(m.id)
            if listed is not None and email not in listed:
                states[m.id] = "removed from the alert"
            elif (who := self.people.get((m.account_id, email))) is not None:
                states[m.id] = who.status
            else:
                states[m.id] = "not registered"
        return states

    def _action_of(self, mail_id: int) -> list[str] | None:
        """The recipients of the action whose alert this mail is for, if it still has one."""
        for d in self.deliveries.values():
            if d.delivery.mail_id == mail_id and d.delivery.alert_id in self.alerts:
                a = self.alerts[d.delivery.alert_id].alert
                found = self.actions.get(ActionKey(a.account_id, a.flow_id, a.step_id))
                return found[1].recipients if found else None
        return None

    async def skip_mails(self, refused: Mapping[int, str], reason: str) -> list[str]:
        done = []
        for mail_id, status in refused.items():
            if mail_id in self.mails:
                self.mails[mail_id].status = "cancelled"
                self.mails[mail_id].last_error = reason
            if (d := self._pending_of(mail_id)) is not None:
                d.status, d.error = "skipped", f"recipient {status} at send time"
                done.append(d.delivery.alert_id)
        return done

    async def lock_sending(self, alert_ids: Sequence[str]) -> list[SendingAlert]:
        return [
            SendingAlert(a.alert_id, a.account_id, a.flow_id, a.step_id, a.profile_id, a.trace)
            for a in (self.alerts[i].alert for i in sorted(set(alert_ids)) if i in self.alerts)
            if self.alerts[a.alert_id].status == "sending"
        ]

    async def delivery_statuses(self, alert_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for (alert_id, email), d in self.deliveries.items():
            if alert_id in alert_ids:
                out.setdefault(alert_id, {})[email] = d.status
        return out

    async def complete_alerts(self, outcomes: Sequence[AlertOutcome]) -> None:
        for o in outcomes:
            stored = self.alerts.get(o.alert_id)
            if stored is not None and stored.status == "sending":
                stored.status, stored.reason = o.type, o.reason

    def publish_outcome(
        self, outcome: AlertOutcome, headers: Mapping[str, str] | None = None
    ) -> None:
        self.outbox.append((topics.ALERT_OUTCOMES, outcome.profile_id, outcome))
        self.outbox_headers.append((outcome.alert_id, headers))

    def dead_letter(self, consumer: str, record: Any, error: str) -> None:
        self.dead_letters.append((consumer, record, error))

    # --- the sending limit (A8) ----------------------------------------------------------

    async def now(self) -> datetime:
        return self.clock

    async def send_limit(self, account_id: str, default: int) -> int:
        return self.limits.get(account_id, default)

    async def lock_window(self, account_id: str, start: datetime) -> int:
        return self.windows.setdefault((account_id, start), 0)

    async def count_sent(self, account_id: str, start: datetime, n: int) -> None:
        if (account_id, start) in self.windows:
            self.windows[account_id, start] += n

    async def defer(self, mail_ids: Sequence[int], until: datetime) -> None:
        for mail_id in mail_ids:
            if mail_id in self.mails:
                self.mails[mail_id].next_attempt_at = until
        for d in self.deliveries.values():
            if d.delivery.mail_id in mail_ids:
                d.deferred_until = until
