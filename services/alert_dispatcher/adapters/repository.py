"""The dispatcher's tables: recipients, alerts and their per-recipient deliveries, the
sending-limit counters. SQL lives here so that handlers read as the rules they apply."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.alert_dispatcher.domain.outcomes import decide
from services.alert_dispatcher.domain.recipients import Recipient
from shared.contracts import AlertOutcome, Message, topics
from shared.db.uow import notify_channel

SCHEMA = "alert_dispatcher"


async def recipients(
    conn: asyncpg.Connection, account_id: str, emails: Sequence[str], *, lock: bool = False
) -> dict[str, Recipient]:
    rows = await conn.fetch(
        "SELECT email, status, generation FROM recipients WHERE account_id = $1"
        " AND email = ANY($2::text[]) ORDER BY email" + (" FOR UPDATE" if lock else ""),
        account_id,
        list(emails),
    )
    return {r["email"]: Recipient(r["email"], r["status"], r["generation"]) for r in rows}


async def save_recipient(conn: asyncpg.Connection, account_id: str, r: Recipient) -> None:
    await conn.execute(
        "INSERT INTO recipients (account_id, email, status, generation) VALUES ($1,$2,$3,$4)"
        " ON CONFLICT (account_id, email) DO UPDATE SET status = EXCLUDED.status,"
        " generation = EXCLUDED.generation, updated_at = now(),"
        " confirmed_at = CASE WHEN EXCLUDED.status = 'confirmed' THEN now()"
        "                     ELSE recipients.confirmed_at END,"
        " disabled_at = CASE WHEN EXCLUDED.status = 'disabled' THEN now()"
        "                    ELSE recipients.disabled_at END",
        account_id,
        r.email,
        r.status,
        r.generation,
    )


async def mark_asked(conn: asyncpg.Connection, account_id: str, email: str, sender: str) -> None:
    """Record that a confirmation mail goes out now, from `sender` (C12 expiry)."""
    await conn.execute(
        "UPDATE recipients SET asked_at = now(), asked_from = $3"
        " WHERE account_id = $1 AND email = $2",
        account_id,
        email,
        sender,
    )


async def asked(
    conn: asyncpg.Connection, account_id: str, email: str
) -> tuple[datetime, str | None] | None:
    """When and from which address the recipient was last asked to confirm."""
    row = await conn.fetchrow(
        "SELECT coalesce(asked_at, updated_at) AS at, asked_from FROM recipients"
        " WHERE account_id = $1 AND email = $2",
        account_id,
        email,
    )
    return (row["at"], row["asked_from"]) if row else None


async def finish_alerts(conn: asyncpg.Connection, alert_ids: Sequence[str]) -> list[AlertOutcome]:
    """Complete every alert among `alert_ids` whose deliveries are all done, exactly once
    (the alert row is locked and must still be `sending`); returns their outcomes."""
    if not alert_ids:
        return []
    # Lock first, read deliveries after: a concurrent worker that finished a sibling mail
    # has committed by the time the lock is granted, so its delivery is seen.
    alerts = await conn.fetch(
        "SELECT alert_id, account_id, flow_id, step_id, profile_id FROM alerts"
        " WHERE alert_id = ANY($1::text[]) AND status = 'sending' ORDER BY alert_id FOR UPDATE",
        sorted(set(alert_ids)),
    )
    if not alerts:
        return []
    deliveries: dict[str, dict[str, str]] = {}
    for d in await conn.fetch(
        "SELECT alert_id, email, status FROM alert_deliveries WHERE alert_id = ANY($1::text[])",
        [a["alert_id"] for a in alerts],
    ):
        deliveries.setdefault(d["alert_id"], {})[d["email"]] = d["status"]
    outcomes = []
    for a in alerts:
        outcome = decide(deliveries.get(a["alert_id"], {}))
        if outcome is None:
            continue
        outcomes.append(
            AlertOutcome(
                type=outcome.type,
                alert_id=a["alert_id"],
                account_id=a["account_id"],
                flow_id=a["flow_id"],
                step_id=a["step_id"],
                profile_id=a["profile_id"],
                recipients=outcome.recipients,
                failed_recipients=outcome.failed_recipients,
                reason=outcome.reason,
            )
        )
    if outcomes:
        await conn.executemany(
            "UPDATE alerts SET status = $2, reason = $3, completed_at = now() WHERE alert_id = $1",
            [(o.alert_id, o.type, o.reason) for o in outcomes],
        )
    return outcomes


async def publish_now(
    conn: asyncpg.Connection, messages: Sequence[tuple[str, str, Message]]
) -> None:
    """Write outbox rows on a connection that is not a unit of work (the mail worker's
    claim transaction); they commit with it, like `uow.publish`."""
    if not messages:
        return
    await conn.executemany(
        "INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, '{}'::jsonb)",
        [(topic, key.encode(), m.to_bytes()) for topic, key, m in messages],
    )
    await conn.execute("SELECT pg_notify($1, '')", notify_channel(SCHEMA))


def outcome_messages(outcomes: Sequence[AlertOutcome]) -> list[tuple[str, str, Message]]:
    return [(topics.ALERT_OUTCOMES, o.profile_id, o) for o in outcomes]


async def send_limit(conn: asyncpg.Connection, account_id: str, default: int) -> int:
    value = await conn.fetchval(
        "SELECT alert_send_limit_per_hour FROM account_limits WHERE account_id = $1", account_id
    )
    return default if value is None else int(value)


async def lock_window(conn: asyncpg.Connection, account_id: str, start: datetime) -> int:
    """The number of mails counted in the account's window, its row locked until commit
    (replicas admitting mails of the same account take turns)."""
    await conn.execute(
        "INSERT INTO send_windows (account_id, window_start) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        account_id,
        start,
    )
    return int(
        await conn.fetchval(
            "SELECT sent FROM send_windows WHERE account_id = $1 AND window_start = $2 FOR UPDATE",
            account_id,
            start,
        )
    )


async def action_recipients(
    conn: asyncpg.Connection, actions: set[tuple[str, str, str]]
) -> dict[tuple[str, str, str], set[str]]:
    """The folded recipients each alert action has now, by (account, flow, step); an
    action this service has not seen (or no longer has) is absent."""
    if not actions:
        return {}
    keys = sorted(actions)
    rows = await conn.fetch(
        "SELECT a.account_id, a.flow_id, a.step_id, a.recipients FROM alert_actions a"
        " JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(account_id, flow_id, step_id)"
        " USING (account_id, flow_id, step_id)",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return {(r["account_id"], r["flow_id"], r["step_id"]): set(r["recipients"]) for r in rows}


async def last_confirmation_sender(
    conn: asyncpg.Connection, account_id: str, email: str, kind: str
) -> str | None:
    """The sender of the newest confirmation mail queued for a recipient."""
    return await conn.fetchval(
        "SELECT mail_from FROM mail_queue WHERE account_id = $1 AND rcpt_to = $2"
        " AND kind = $3 ORDER BY id DESC LIMIT 1",
        account_id,
        email,
        kind,
    )
