"""Pruning what only needs to be kept for a while: the inbox of processed message ids
and mails that were sent or failed and whose outcome is published.

The inbox makes redeliveries harmless (X2); Kafka redelivers only what a consumer had
not committed, minutes at most, so ids older than the retention can go. A finished mail
keeps its dedupe key for the same purpose and is a record for support; after the
retention it goes too. Deletes run in small chunks so that no long lock or transaction
holds up the consumers. No index is needed: rows are appended in time order, so the
scan for old ones finds them at the start of the table.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from shared.cancellation import raise_if_cancelled
from shared.db.errors import DB_ERRORS
from shared.logging import get_logger

log = get_logger(__name__)

_PRUNE = {
    "processed_messages": "DELETE FROM processed_messages WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM processed_messages WHERE processed_at < now() - $1::interval"
    " LIMIT $2))",
    "mail_queue": "DELETE FROM mail_queue WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM mail_queue WHERE finalized AND status IN ('sent', 'failed')"
    " AND created_at < now() - $1::interval LIMIT $2))",
}


async def prune(pool: asyncpg.Pool, keep: timedelta, chunk: int = 5000) -> dict[str, int]:
    """Delete inbox rows and finished mails older than `keep`; returns rows deleted per
    table."""
    deleted = {}
    for table, sql in _PRUNE.items():
        total = 0
        while True:
            async with pool.acquire() as conn:
                status = await conn.execute(sql, keep, chunk)
            n = int(status.split()[-1])
            total += n
            if n < chunk:
                break
        deleted[table] = total
    return deleted


async def prune_forever(pool: asyncpg.Pool, keep: timedelta, every_s: float) -> None:
    """Prune every `every_s` seconds until cancelled; database failures wait a round."""
    while True:
        try:
            deleted = await prune(pool, keep)
            if any(deleted.values()):
                log.info("pruned old rows", **deleted)
        except DB_ERRORS as exc:
            raise_if_cancelled()
            log.warning("pruning failed; trying again later", error=str(exc))
        except Exception as exc:  # pruning is housekeeping: never stop the service for it
            raise_if_cancelled()
            log.exception("pruning failed; trying again later", error=repr(exc))
        await asyncio.sleep(every_s)
