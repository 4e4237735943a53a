"""Read-side SQL of the suppression service's HTTP API: a profile's suppressions in
force, soft-bounce counts and change history. Nothing here writes."""

from __future__ import annotations

from typing import Any

import asyncpg

HISTORY_LIMIT = 1000


async def profile(pool: asyncpg.Pool, account_id: str, profile_id: str) -> dict[str, Any] | None:
    """The profile as the API shows it (JSON-ready), or None when it is unknown."""
    async with pool.acquire() as conn:
        prof = await conn.fetchrow(
            "SELECT soft_bounces, list_bounces FROM suppression_profiles"
            " WHERE account_id = $1 AND profile_id = $2",
            account_id,
            profile_id,
        )
        rows = await conn.fetch(
            "SELECT channel, reason, nullif(list_key, '') AS list_id, since, command_id"
            " FROM suppressions WHERE account_id = $1 AND profile_id = $2 ORDER BY since",
            account_id,
            profile_id,
        )
        hist = await conn.fetch(
            "SELECT change, channel, reason, list_id, source, recorded_at"
            " FROM suppression_history WHERE account_id = $1 AND profile_id = $2"
            " ORDER BY id LIMIT $3",
            account_id,
            profile_id,
            HISTORY_LIMIT,
        )
    if prof is None:
        return None
    return {
        "soft_bounces": prof["soft_bounces"],
        "list_soft_bounces": prof["list_bounces"] or {},
        "suppressions": [{**dict(r), "since": r["since"].isoformat()} for r in rows],
        "history": [{**dict(h), "recorded_at": h["recorded_at"].isoformat()} for h in hist],
    }
