"""A durable queue of mails in the service's own schema: every SQL statement on
`mail_queue` that the mail worker (shared/mail_worker.py) and the services run.

Mails are queued in the same transaction as the state change that asks for them (like the
outbox), under a dedupe key, so a redelivered request never queues a mail twice. A mail
goes `pending` → `sending` (claimed, under a lease) → `sent` / `failed` (the server's
answer), or back to `pending` to retry; `cancelled` when a service holds it back for
good. `finalized` says the service's hook has seen the final answer. The worker writes
answers and finishes mails in batches (`write_answers`, `take_finished`): one statement
for many mails.
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


@dataclass(frozen=True, slots=True)
class Claimed:
    """A mail the worker holds under its lease, with what it needs to send it."""

    mail: QueuedMail
    envelope: Envelope


async def claim_due(conn: asyncpg.Connection, limit: int) -> list[Claimed]:
    """Lock up to `limit` due mails (pending, or sending with a lease run out) that no
    other worker holds, with their envelopes; the caller's transaction keeps them."""
    rows = await conn.fetch(
        "SELECT id, dedupe_key, kind, account_id, rcpt_to, attempts, mail_from, content"
        " FROM mail_queue WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [
        Claimed(
            QueuedMail(
                r["id"], r["dedupe_key"], r["kind"], r["account_id"], r["rcpt_to"], r["attempts"]
            ),
            Envelope(r["mail_from"], r["content"]),
        )
        for r in rows
    ]


async def mark_sending(conn: asyncpg.Connection, ids: Sequence[int], lease: timedelta) -> None:
    """Count an attempt and lease the mails to this worker for `lease`."""
    await conn.execute(
        "UPDATE mail_queue SET status = 'sending', attempts = attempts + 1,"
        " next_attempt_at = now() + $2::interval WHERE id = ANY($1::bigint[])",
        list(ids),
        lease,
    )


async def extend_lease(conn: asyncpg.Connection, ids: Sequence[int], lease: timedelta) -> None:
    await conn.execute(
        "UPDATE mail_queue SET next_attempt_at = now() + $2::interval"
        " WHERE id = ANY($1::bigint[]) AND status = 'sending'",
        list(ids),
        lease,
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """What became of one attempt: `sent`, `failed` (for good) or `retry` after
    `delay_s`. `attempt` is the mail's attempt count as this attempt's claim left it."""

    mail_id: int
    attempt: int
    status: str
    error: str | None = None
    delay_s: float = 0.0


async def write_answers(
    conn: asyncpg.Connection, answers: Sequence[Answer], *, finalized: bool
) -> None:
    """Record a batch of answers in one statement: `sent` / `failed` (with `finalized`:
    False when a service's hook still has to see them), `retry` back to `pending` after
    its delay. Only a mail still `sending` under the same attempt changes, so writing an
    answer twice is a no-op, and so is a late answer for a mail whose lease ran out and
    that another worker claimed since."""
    if not answers:
        return
    await conn.execute(
        "UPDATE mail_queue q SET"
        " status = CASE WHEN a.status = 'retry' THEN 'pending' ELSE a.status END,"
        " last_error = a.error,"
        " finalized = CASE WHEN a.status = 'retry' THEN q.finalized ELSE $6 END,"
        " sent_at = CASE WHEN a.status = 'sent' THEN now()"
        "                WHEN a.status = 'failed' THEN NULL ELSE q.sent_at END,"
        " next_attempt_at = CASE WHEN a.status = 'retry'"
        "   THEN now() + make_interval(secs => a.delay) ELSE q.next_attempt_at END"
        " FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::float8[])"
        "   AS a(id, attempt, status, error, delay)"
        " WHERE q.id = a.id AND q.status = 'sending' AND q.attempts = a.attempt",
        [a.mail_id for a in answers],
        [a.attempt for a in answers],
        [a.status for a in answers],
        [a.error for a in answers],
        [a.delay_s for a in answers],
        finalized,
    )


_FINISHED = "id, dedupe_key, kind, account_id, rcpt_to, attempts, status, last_error AS error"


async def take_finished(conn: asyncpg.Connection, ids: Sequence[int]) -> list[QueuedMail]:
    """Mark finalized those of `ids` that are answered and not finalized yet, and return
    them (locked, by id): the worker's own answers, finished in its transaction. A mail
    another transaction is finishing right now is waited for and then left out."""
    rows = await conn.fetch(
        f"UPDATE mail_queue SET finalized = true WHERE id = ANY($1::bigint[])"
        f" AND NOT finalized AND status IN ('sent', 'failed') RETURNING {_FINISHED}",
        list(ids),
    )
    return sorted((QueuedMail(**dict(r)) for r in rows), key=lambda m: m.id)


async def unfinalized(conn: asyncpg.Connection, limit: int) -> list[QueuedMail]:
    """Lock mails answered but not yet seen by the service's hook."""
    rows = await conn.fetch(
        f"SELECT {_FINISHED} FROM mail_queue WHERE NOT finalized"
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
