"""The read behind the list of an account's flows (the operator console's first screen):
each flow's version in force, name, step ids and types, and whether it was deleted."""

from __future__ import annotations

from typing import Any

import asyncpg

_FLOWS = (
    "SELECT flow_id, version, deleted, updated_at, definition->>'name' AS name,"
    " definition->'steps' AS steps, definition->'trigger' AS trigger"
    " FROM flows WHERE account_id = $1 AND flow_id > $2"
    " AND ($4::text IS NULL OR flow_id = $4) ORDER BY flow_id LIMIT $3"
)


async def flows(
    conn: asyncpg.Connection, account_id: str, after: str, limit: int, only: str | None = None
) -> list[Any]:
    """A page of the account's flows in id order, starting after `after` (only the flow
    `only` when given)."""
    return await conn.fetch(_FLOWS, account_id, after, limit, only)
