"""Erasing a person's unpublished outbox rows (P2): messages about them that were
committed but not yet relayed are deleted before they reach a topic."""

from __future__ import annotations

import asyncpg


async def delete_unpublished(conn: asyncpg.Connection, keys: list[bytes], keep_topic: str) -> int:
    """Delete unpublished outbox rows with one of `keys`, except those for `keep_topic`
    (the privacy results themselves must still go out); returns how many."""
    if not keys:
        return 0
    status = await conn.execute(
        "DELETE FROM outbox WHERE key = ANY($1::bytea[]) AND topic <> $2", keys, keep_topic
    )
    return int(status.split()[-1])
