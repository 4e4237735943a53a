"""A durable queue of mails in the service's own schema: every SQL statement on
`mail_queue` that the mail worker (shared/mail_worker.py) and the services run.

Mails are queued in the same transaction as the state change that asks for them (like the
outbox), under a dedupe key, so a redelivered request never queues a mail twice. A mail
goes `pending` → `sending` (claimed, under a lease) → `sent` / `failed` (the server's
answer), or back to `pending` to retry; `cancelled` when a service holds it back for
good. `finalized` says the service's hook has seen the final answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from shared.ports import OutgoingMail, QueuedMail


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the worker needs to send a claimed mail."""

    mail_from: str
    content: bytes


async def enqueue_many(conn: asyncpg.Connection, mails: Sequence[OutgoingMail]) -> dict[str, int]:
    """Queue `mails` in one statement, skipping dedupe keys queued before; returns the id
    of each mail queued now, by dedupe key.

    The same statement notifies the schema's mail workers, delivered when the transaction
    commits (PostgreSQL folds repeats within a transaction into one)."""
    if not mails:
        return {}
    rows = await conn.fetch(
        "WITH queued AS (INSERT INTO mail_queue (dedupe_key, kind, account_id, message_id,"
        " mail_from, rcpt_to, content)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::bytea[]) ON CONFLICT (dedupe_key) DO NOTHING"
        " RETURNING id, dedupe_key)"
        " SELECT id, dedupe_key, pg_notify('mail_' || current_schema(), '') FROM queued",
        [m.dedupe_key for m in mails],
        [m.kind for m in mails],
        [m.account_id for m in mails],
        [m.message["Message-ID"] for m in mails],
        [m.mail_from for m in mails],
        [m.rcpt_to for m in mails],
        [m.message.as_bytes() for m in mails],
    )
    return {r["dedupe_key"]: r["id"] for r in rows}


# --- the worker's side -------------------------------------------------------------------


async def claim_due(conn: asyncpg.Connection, limit: int) -> list[QueuedMail]:
    """Lock up to `limit` due mails (pending, or sending with a lease run out) that no
    other worker holds; the caller's transaction keeps them."""
    rows = await conn.fetch(
        "SELECT id, dedupe_key, kind, account_id, rcpt_to, attempts FROM mail_queue"
        " WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [QueuedMail(**dict(r)) for r in rows]


async def mark_sending(conn: asyncpg.Connection, ids: Sequence[int], lease: timedelta) -> None:
    """Count an attempt and lease the mails to this worker for `lease`."""
    await conn.execute(
        "UPDATE mail_queue SET status = 'sending', attempts = attempts + 1,"
        " next_attempt_at = now() + $2::interval WHERE id = ANY($1::bigint[])",
        list(ids),
        lease,
    )


async def envelopes(conn: asyncpg.Connection, ids: Sequence[int]) -> dict[int, Envelope]:
    rows = await conn.fetch(
        "SELECT id, mail_from, content FROM mail_queue WHERE id = ANY($1::bigint[])", list(ids)
    )
    return {r["id"]: Envelope(r["mail_from"], r["content"]) for r in rows}


async def extend_lease(conn: asyncpg.Connection, ids: Sequence[int], lease: timedelta) -> None:
    await conn.execute(
        "UPDATE mail_queue SET next_attempt_at = now() + $2::interval"
        " WHERE id = ANY($1::bigint[]) AND status = 'sending'",
        list(ids),
        lease,
    )


async def retry_later(
    conn: asyncpg.Connection, mail_id: int, delay_s: float, error: str | None
) -> None:
    await conn.execute(
        "UPDATE mail_queue SET status = 'pending', last_error = $3,"
        " next_attempt_at = now() + make_interval(secs => $2) WHERE id = $1",
        mail_id,
        delay_s,
        error,
    )


async def mark_answered(
    conn: asyncpg.Connection, mail_id: int, status: str, error: str | None
) -> None:
    """Record the server's final answer (`sent` or `failed`). Only a mail still `sending`
    changes, so writing the same mark twice is a no-op instead of un-finalizing a mail
    whose outcome is out."""
    await conn.execute(
        "UPDATE mail_queue SET status = $2, last_error = $3, finalized = false,"
        " sent_at = CASE WHEN $2 = 'sent' THEN now() END"
        " WHERE id = $1 AND status = 'sending'",
        mail_id,
        status,
        error,
    )


async def unfinalized(conn: asyncpg.Connection, limit: int) -> list[QueuedMail]:
    """Lock mails answered but not yet seen by the service's hook."""
    rows = await conn.fetch(
        "SELECT id, dedupe_key, kind, account_id, rcpt_to, attempts, status,"
        " last_error AS error FROM mail_queue WHERE NOT finalized"
        " AND status IN ('sent', 'failed') ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [QueuedMail(**dict(r)) for r in rows]


async def mark_finalized(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    await conn.execute(
        "UPDATE mail_queue SET finalized = true WHERE id = ANY($1::bigint[])", list(ids)
    )


async def note_error(conn: asyncpg.Connection, mail_id: int, reason: str) -> None:
    await conn.execute("UPDATE mail_queue SET last_error = $2 WHERE id = $1", mail_id, reason)


# --- held back by a service --------------------------------------------------------------


async def cancel(conn: asyncpg.Connection, ids: Sequence[int], reason: str) -> None:
    """Never send these mails (e.g. their recipient opted out since they were queued)."""
    await conn.execute(
        "UPDATE mail_queue SET status = 'cancelled', last_error = $2 WHERE id = ANY($1::bigint[])",
        list(ids),
        reason,
    )


async def defer(conn: asyncpg.Connection, ids: Sequence[int], until: datetime) -> None:
    """Hold these mails until `until` without using up an attempt."""
    await conn.execute(
        "UPDATE mail_queue SET next_attempt_at = $2 WHERE id = ANY($1::bigint[])",
        list(ids),
        until,
    )


async def last_sender(
    conn: asyncpg.Connection, account_id: str, rcpt_to: str, kind: str
) -> str | None:
    """The sender of the newest mail of `kind` queued for `rcpt_to`."""
    return await conn.fetchval(
        "SELECT mail_from FROM mail_queue WHERE account_id = $1 AND rcpt_to = $2"
        " AND kind = $3 ORDER BY id DESC LIMIT 1",
        account_id,
        rcpt_to,
        kind,
    )


async def waiting(conn: asyncpg.Connection, account_id: str, kind: str) -> int:
    """How many mails of `kind` wait for a later time (a retry or the sending limit)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM mail_queue WHERE account_id = $1 AND kind = $2"
            " AND status = 'pending' AND next_attempt_at > now()",
            account_id,
            kind,
        )
    )
