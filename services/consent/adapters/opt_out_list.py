"""The read behind the account's opt-outs by level (C10, W5), as Concep's "Admin >
Activity > Opt outs" lists them: every profile's email opt-out in force at group level
(email unsubscribed), client level or user level, newest first."""

from __future__ import annotations

from typing import Any

import asyncpg

# Slots in force: `email` unsubscribed is the group level; `scope:client:C` and
# `scope:user:C/U` the scoped levels (services/consent/domain/model.py).
_OPT_OUTS = (
    "SELECT s.profile_id, s.email, slot.key AS slot, slot.value->>'consented_at' AS at,"
    " slot.value->>'method' AS method, count(*) OVER () AS total"
    " FROM consent_state s, jsonb_each(s.state->'slots') AS slot"
    " WHERE s.account_id = $1 AND slot.value->>'status' = 'unsubscribed'"
    " AND (slot.key = 'email' OR slot.key LIKE 'scope:%')"
    " AND ($2 = '' OR ($2 = 'group' AND slot.key = 'email')"
    "  OR slot.key LIKE 'scope:' || $2 || ':%')"
    " ORDER BY slot.value->>'consented_at' DESC NULLS LAST, s.profile_id, slot.key"
    " LIMIT $3 OFFSET $4"
)


async def opt_outs(
    pool: asyncpg.Pool, account_id: str, level: str, limit: int, offset: int
) -> list[Any]:
    """A page of the account's opt-outs at `level` (`group`, `client`, `user`, or every
    level for ''), each row with the total count."""
    async with pool.acquire() as conn:
        return await conn.fetch(_OPT_OUTS, account_id, level, limit, offset)
