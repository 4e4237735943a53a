"""Transaction-level advisory locks on named things (I1, C6, F9).

Two batches that act on the same address, number or (profile, channel) must not both
read before either writes. Each thing is named by parts (`derived_id`, so no two part
lists give one name), hashed to PostgreSQL's signed 64-bit lock key, and every batch
takes its keys in one sorted statement: two batches that lock only these cannot
deadlock. The locks are released when the transaction ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import asyncpg

from shared.domain.identity import derived_id


def lock_key(*parts: str) -> int:
    """The signed 64-bit advisory lock key of the thing `parts` name."""
    digest = hashlib.sha256(derived_id(*parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_all(conn: asyncpg.Connection, names: Iterable[tuple[str, ...]]) -> None:
    """Hold every named thing until the transaction ends, taken in key order."""
    keys = sorted({lock_key(*parts) for parts in names})
    if keys:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[])"
            " WITH ORDINALITY AS t(k, n) ORDER BY n",
            keys,
        )
