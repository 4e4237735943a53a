"""The dispatcher's repositories on PostgreSQL (`ports.FlowRepository` and the others):
flow versions and alert actions, recipients, account settings, alerts and their
per-recipient deliveries, queued mails, the sending-limit counters. Each works on the
connection of one transaction (`adapters.unit_of_work.PostgresAlertWork` binds them all
to the batch's), so what a use case does commits or rolls back as a whole, outbox
included."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

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
from shared.contracts import AlertOutcome
from shared.db import mail_queue
from shared.pages import accounts as page_accounts
from shared.pages.accounts import PageSettings
from shared.ports import QueuedMail

_FINISH = (
    "UPDATE alert_deliveries d SET status = m.status, error = m.error, completed_at = now()"
    " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS m(id, status, error)"
    " WHERE d.mail_id = m.id AND d.status = 'pending' RETURNING d.alert_id"
)
"""Each pending delivery's final answer recorded; the alert of each, once per delivery
(`finish_deliveries`, and the first step of `finish_and_lock`)."""


def _answers(answered: Sequence[QueuedMail]) -> tuple[list[int], list[str], list[str | None]]:
    """`_FINISH`'s parameters: the mails' ids, statuses and errors."""
    return [m.id for m in answered], [m.status for m in answered], [m.error for m in answered]


class _OnConnection:
    """A repository on one transaction's connection (in the service's schema)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn


class PostgresFlows(_OnConnection):
    async def delete(self, account_id: str, flow_id: str) -> None:
        await self._conn.execute(
            "UPDATE flow_versions SET deleted = true WHERE account_id = $1 AND flow_id = $2",
            account_id,
            flow_id,
        )
        await self._conn.execute(
            "DELETE FROM alert_actions WHERE account_id = $1 AND flow_id = $2",
            account_id,
            flow_id,
        )

    async def reject_version(
        self, account_id: str, flow_id: str, version: int, errors: list[str]
    ) -> None:
        await self._conn.execute(
            "INSERT INTO flow_rejections (account_id, flow_id, version, errors)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            account_id,
            flow_id,
            version,
            errors,
        )

    async def take_version(self, account_id: str, flow_id: str, version: int) -> bool:
        newer = await self._conn.fetchrow(
            "INSERT INTO flow_versions (account_id, flow_id, version) VALUES ($1, $2, $3)"
            " ON CONFLICT (account_id, flow_id) DO UPDATE SET version = EXCLUDED.version,"
            " deleted = false WHERE flow_versions.version < EXCLUDED.version RETURNING 1",
            account_id,
            flow_id,
            version,
        )
        return newer is not None

    async def actions(self, account_id: str, flow_id: str) -> dict[str, set[str]]:
        rows = await self._conn.fetch(
            "SELECT step_id, recipients FROM alert_actions WHERE account_id = $1 AND flow_id = $2",
            account_id,
            flow_id,
        )
        return {r["step_id"]: set(r["recipients"]) for r in rows}

    async def replace_actions(
        self, account_id: str, flow_id: str, version: int, actions: Sequence[AlertAction]
    ) -> None:
        await self._conn.execute(
            "DELETE FROM alert_actions WHERE account_id = $1 AND flow_id = $2"
            " AND NOT (step_id = ANY($3::text[]))",
            account_id,
            flow_id,
            [a.step_id for a in actions],
        )
        await self._conn.executemany(
            "INSERT INTO alert_actions (account_id, flow_id, step_id, flow_version, mode,"
            " recipients) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, flow_id,"
            " step_id) DO UPDATE SET flow_version = EXCLUDED.flow_version, mode = EXCLUDED.mode,"
            " recipients = EXCLUDED.recipients",
            [(account_id, flow_id, a.step_id, version, a.mode, a.recipients) for a in actions],
        )

    async def action_recipients(self, keys: set[ActionKey]) -> dict[ActionKey, set[str]]:
        if not keys:
            return {}
        ordered = sorted(keys)
        rows = await self._conn.fetch(
            "SELECT a.account_id, a.flow_id, a.step_id, a.recipients FROM alert_actions a"
            " JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(account_id, flow_id, step_id)"
            " USING (account_id, flow_id, step_id)",
            [k.account_id for k in ordered],
            [k.flow_id for k in ordered],
            [k.step_id for k in ordered],
        )
        return {
            ActionKey(r["account_id"], r["flow_id"], r["step_id"]): set(r["recipients"])
            for r in rows
        }


class PostgresRecipients(_OnConnection):
    async def find(
        self, account_id: str, emails: Sequence[str], *, lock: bool = False
    ) -> dict[str, Recipient]:
        rows = await self._conn.fetch(
            "SELECT email, status, generation, address FROM recipients WHERE account_id = $1"
            " AND email = ANY($2::text[]) ORDER BY email" + (" FOR UPDATE" if lock else ""),
            account_id,
            list(emails),
        )
        return {
            r["email"]: Recipient(r["email"], r["status"], r["generation"], r["address"])
            for r in rows
        }

    async def save(self, account_id: str, recipient: Recipient) -> None:
        await self._conn.execute(
            "INSERT INTO recipients (account_id, email, status, generation, address)"
            " VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (account_id, email) DO UPDATE SET status = EXCLUDED.status,"
            " generation = EXCLUDED.generation, updated_at = now(),"
            " address = coalesce(EXCLUDED.address, recipients.address),"
            " confirmed_at = CASE WHEN EXCLUDED.status = 'confirmed' THEN now()"
            "                     ELSE recipients.confirmed_at END,"
            " disabled_at = CASE WHEN EXCLUDED.status = 'disabled' THEN now()"
            "                    ELSE recipients.disabled_at END",
            account_id,
            recipient.email,
            recipient.status,
            recipient.generation,
            recipient.address,
        )

    async def mark_asked(self, account_id: str, email: str, sender: str) -> None:
        """Record that a confirmation mail goes out now, from `sender` (C12 expiry)."""
        await self._conn.execute(
            "UPDATE recipients SET asked_at = now(), asked_from = $3"
            " WHERE account_id = $1 AND email = $2",
            account_id,
            email,
            sender,
        )

    async def asked(self, account_id: str, email: str) -> Asked | None:
        row = await self._conn.fetchrow(
            "SELECT coalesce(asked_at, updated_at) AS at, asked_from FROM recipients"
            " WHERE account_id = $1 AND email = $2",
            account_id,
            email,
        )
        return Asked(row["at"], row["asked_from"]) if row else None

    async def states(self, claimed: Sequence[QueuedMail]) -> dict[int, str]:
        rows = await self._conn.fetch(
            "SELECT m.id, CASE WHEN m.email = ANY(coalesce(a.recipients, ARRAY[m.email]))"
            "   THEN coalesce(r.status, 'not registered') ELSE 'removed from the alert' END"
            "   AS status"
            " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS m(id, account_id, email)"
            " LEFT JOIN recipients r ON r.account_id = m.account_id AND r.email = m.email"
            " LEFT JOIN alert_deliveries d ON d.mail_id = m.id"
            " LEFT JOIN alerts al ON al.alert_id = d.alert_id"
            " LEFT JOIN alert_actions a ON a.account_id = al.account_id"
            "   AND a.flow_id = al.flow_id AND a.step_id = al.step_id",
            [m.id for m in claimed],
            [m.account_id for m in claimed],
            [recipient_key(m.rcpt_to) for m in claimed],
        )
        return {r["id"]: r["status"] for r in rows}


class PostgresAccounts(_OnConnection):
    async def pages(self, accounts: Sequence[str]) -> dict[str, PageSettings]:
        return await page_accounts.load_many(self._conn, list(accounts))

    async def save_pages(self, account_id: str, values: dict[str, Any]) -> None:
        """W1: the account's page settings (checked by the caller)."""
        await page_accounts.save(self._conn, account_id, values)


class PostgresAlerts(_OnConnection):
    async def add(self, alerts: Sequence[NewAlert]) -> None:
        """One statement for the batch (`executemany` would be one per alert). The
        subject hashes and trace headers of the batch travel as one JSON array each,
        read by position: `unnest` flattens arrays of arrays."""
        if not alerts:
            return
        await self._conn.execute(
            "INSERT INTO alerts (alert_id, account_id, flow_id, flow_version, step_id,"
            " profile_id, requested_at, subject_hashes, headers)"
            " SELECT a.alert_id, a.account_id, a.flow_id, a.flow_version, a.step_id,"
            " a.profile_id, a.requested_at,"
            " ARRAY(SELECT jsonb_array_elements_text($8::jsonb -> (a.n::int - 1))),"
            " nullif($9::jsonb -> (a.n::int - 1), 'null'::jsonb)"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[],"
            " $6::text[], $7::timestamptz[]) WITH ORDINALITY"
            " AS a(alert_id, account_id, flow_id, flow_version, step_id, profile_id,"
            " requested_at, n)"
            " ON CONFLICT DO NOTHING",
            [a.alert_id for a in alerts],
            [a.account_id for a in alerts],
            [a.flow_id for a in alerts],
            [a.flow_version for a in alerts],
            [a.step_id for a in alerts],
            [a.profile_id for a in alerts],
            [a.requested_at for a in alerts],
            [list(a.subject_hashes) for a in alerts],
            [dict(a.trace) if a.trace is not None else None for a in alerts],
        )

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        await self._conn.execute(
            "INSERT INTO alert_deliveries (alert_id, email, mail_id, status, error, completed_at)"
            " SELECT d.alert_id, d.email, d.mail_id, d.status, d.error,"
            " CASE WHEN d.status = 'pending' THEN NULL ELSE now() END"
            " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])"
            " AS d(alert_id, email, mail_id, status, error)"
            " ON CONFLICT DO NOTHING",
            [d.alert_id for d in deliveries],
            [d.email for d in deliveries],
            [d.mail_id for d in deliveries],
            [d.status for d in deliveries],
            [d.error for d in deliveries],
        )

    async def finish_deliveries(self, answered: Sequence[QueuedMail]) -> list[str]:
        if not answered:
            return []
        rows = await self._conn.fetch(_FINISH, *_answers(answered))
        return [r["alert_id"] for r in rows]

    async def lock_sending(self, alert_ids: Sequence[str]) -> list[SendingAlert]:
        if not alert_ids:
            return []
        rows = await self._conn.fetch(
            "SELECT alert_id, account_id, flow_id, step_id, profile_id, headers AS trace"
            " FROM alerts"
            " WHERE alert_id = ANY($1::text[]) AND status = 'sending' ORDER BY alert_id"
            " FOR UPDATE",
            sorted(set(alert_ids)),
        )
        return [SendingAlert(**dict(r)) for r in rows]

    async def finish_and_lock(self, answered: Sequence[QueuedMail]) -> list[SendingAlert]:
        """`finish_deliveries` and `lock_sending` in one statement: the deliveries' update
        runs first (a CTE the lock's query reads), then the alerts are locked in id order,
        as the two statements did, one round trip fewer for every finishing."""
        if not answered:
            return []
        rows = await self._conn.fetch(
            f"WITH done AS ({_FINISH})"
            " SELECT alert_id, account_id, flow_id, step_id, profile_id, headers AS trace"
            " FROM alerts WHERE alert_id IN (SELECT alert_id FROM done) AND status = 'sending'"
            " ORDER BY alert_id FOR UPDATE",
            *_answers(answered),
        )
        return [SendingAlert(**dict(r)) for r in rows]

    async def delivery_statuses(self, alert_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for d in await self._conn.fetch(
            "SELECT alert_id, email, status FROM alert_deliveries WHERE alert_id = ANY($1::text[])",
            list(alert_ids),
        ):
            out.setdefault(d["alert_id"], {})[d["email"]] = d["status"]
        return out

    async def complete(self, outcomes: Sequence[AlertOutcome]) -> None:
        """One statement for the batch; an alert named twice keeps its first outcome (as
        one statement per outcome did: the second found it no longer `sending`)."""
        if not outcomes:
            return
        outcomes = list({o.alert_id: o for o in reversed(outcomes)}.values())
        await self._conn.execute(
            "UPDATE alerts a SET status = o.status, reason = o.reason, completed_at = now()"
            " FROM unnest($1::text[], $2::text[], $3::text[]) AS o(alert_id, reason, status)"
            " WHERE a.alert_id = o.alert_id AND a.status = 'sending'",
            [o.alert_id for o in outcomes],
            [o.reason for o in outcomes],
            [o.type for o in outcomes],
        )


class PostgresLimits(_OnConnection):
    def __init__(self, conn: asyncpg.Connection, default_limit: int, window_s: int) -> None:
        super().__init__(conn)
        self._default = default_limit
        self._window_s = window_s

    async def current_window(self) -> Window:
        """By the database's clock: every replica counts windows by the same time."""
        return window_at(await self._conn.fetchval("SELECT now()"), self._window_s)

    async def send_limit(self, account_id: str) -> int:
        value = await self._conn.fetchval(
            "SELECT alert_send_limit_per_hour FROM account_limits WHERE account_id = $1",
            account_id,
        )
        return self._default if value is None else int(value)

    async def set_send_limit(self, account_id: str, value: int) -> None:
        """A8: the account's own sending limit per hour."""
        await self._conn.execute(
            "INSERT INTO account_limits (account_id, alert_send_limit_per_hour)"
            " VALUES ($1, $2) ON CONFLICT (account_id) DO UPDATE SET"
            " alert_send_limit_per_hour = EXCLUDED.alert_send_limit_per_hour,"
            " updated_at = now()",
            account_id,
            value,
        )

    async def lock_window(self, account_id: str, start: datetime) -> int:
        """Replicas admitting mails of the same account take turns on this row: the
        upsert creates it or locks it (a conflict's update takes the row lock) and
        returns what it counts, in one statement."""
        return int(
            await self._conn.fetchval(
                "INSERT INTO send_windows (account_id, window_start) VALUES ($1, $2)"
                " ON CONFLICT (account_id, window_start) DO UPDATE SET sent = send_windows.sent"
                " RETURNING sent",
                account_id,
                start,
            )
        )

    async def open_window(self, account_id: str) -> OpenWindow:
        """The window's start by the database's clock (`now()`, the transaction's time:
        every account of one claim is in the same window), the counter created or
        locked as `lock_window` does it, and the account's limit, in one statement."""
        row = await self._conn.fetchrow(
            "INSERT INTO send_windows (account_id, window_start)"
            " VALUES ($1, to_timestamp(floor(extract(epoch FROM now()) / $2::int) * $2::int))"
            " ON CONFLICT (account_id, window_start) DO UPDATE SET sent = send_windows.sent"
            " RETURNING sent, window_start, (SELECT alert_send_limit_per_hour"
            " FROM account_limits WHERE account_id = $1) AS own_limit",
            account_id,
            self._window_s,
        )
        start = row["window_start"]
        limit = self._default if row["own_limit"] is None else int(row["own_limit"])
        window = Window(start, start + timedelta(seconds=self._window_s))
        return OpenWindow(window, int(row["sent"]), limit)

    async def count_sent(self, account_id: str, start: datetime, n: int) -> None:
        await self._conn.execute(
            "UPDATE send_windows SET sent = sent + $3 WHERE account_id = $1 AND window_start = $2",
            account_id,
            start,
            n,
        )


class PostgresMails(_OnConnection):
    async def last_sender(self, account_id: str, email: str, kind: str) -> str | None:
        return await mail_queue.last_sender(self._conn, account_id, email, kind)

    async def cancel(self, refused: Mapping[int, str], reason: str) -> list[str]:
        if not refused:
            return []
        ids = list(refused)
        await mail_queue.cancel(self._conn, ids, reason)
        rows = await self._conn.fetch(
            "UPDATE alert_deliveries d SET status = 'skipped', completed_at = now(),"
            " error = 'recipient ' || m.status || ' at send time'"
            " FROM unnest($1::bigint[], $2::text[]) AS m(id, status)"
            " WHERE d.mail_id = m.id AND d.status = 'pending' RETURNING d.alert_id",
            ids,
            [refused[i] for i in ids],
        )
        return [r["alert_id"] for r in rows]

    async def defer(self, mail_ids: Sequence[int], until: datetime) -> None:
        if not mail_ids:
            return
        await mail_queue.defer(self._conn, mail_ids, until)
        await self._conn.execute(
            "UPDATE alert_deliveries SET deferred_until = $2 WHERE mail_id = ANY($1::bigint[])",
            list(mail_ids),
            until,
        )
