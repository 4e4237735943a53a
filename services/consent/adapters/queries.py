"""Read-side SQL of the consent service's HTTP API and link pages (C2, C14): a
profile's stored consent, pending confirmations and history, the CSV export and the
not-opted-in segment. Nothing here writes; the use cases' SQL is in `repository.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.consent.domain.model import ProfileConsent

HISTORY_LIMIT = 10_000
EXPORT_PREFETCH = 1000


@dataclass(frozen=True)
class StoredProfile:
    """A profile's consent state and attributes as stored."""

    state: ProfileConsent
    profile: dict[str, Any]


@dataclass(frozen=True)
class PendingConfirmation:
    list_id: str | None
    scope: str | None
    requested_at: datetime


@dataclass(frozen=True)
class ExportRow:
    """One line of the consent CSV export (C14)."""

    profile_id: str
    email: str | None
    email_status: str
    email_consented_at: datetime | None
    email_method: str | None
    suppressions: list[dict[str, Any]]


async def profile(pool: asyncpg.Pool, account_id: str, profile_id: str) -> StoredProfile | None:
    """The profile's row, or None when the service never heard of it."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT state, profile FROM consent_state WHERE account_id = $1 AND profile_id = $2",
            account_id,
            profile_id,
        )
    if row is None:
        return None
    return StoredProfile(ProfileConsent.from_json(row["state"]), dict(row["profile"] or {}))


async def erased(pool: asyncpg.Pool, account_id: str, hashes: list[str]) -> bool:
    """P2: whether any of the keyed hashes (of a profile id, address or number) belongs
    to an erased person whose hold has not been lifted by new consent with evidence."""
    if not hashes:
        return False
    async with pool.acquire() as conn:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM erased_subjects WHERE account_id = $1"
                " AND subject_hash = ANY($2::text[]))",
                account_id,
                hashes,
            )
        )


async def suppressions(pool: asyncpg.Pool, account_id: str, profile_id: str) -> list[dict]:
    """The suppressions in force for the profile, as the suppression service last said."""
    async with pool.acquire() as conn:
        found = await conn.fetchval(
            "SELECT suppressions FROM suppression_view WHERE account_id = $1 AND profile_id = $2",
            account_id,
            profile_id,
        )
    return list(found or [])


async def pending_confirmations(
    pool: asyncpg.Pool, account_id: str, profile_id: str
) -> list[PendingConfirmation]:
    """Double opt-in confirmations not yet clicked (C8), oldest first."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT list_id, scope, requested_at FROM confirmations"
            " WHERE account_id = $1 AND profile_id = $2 AND confirmed_at IS NULL"
            " ORDER BY requested_at",
            account_id,
            profile_id,
        )
    return [PendingConfirmation(**dict(r)) for r in rows]


async def history(pool: asyncpg.Pool, account_id: str, profile_id: str) -> list[dict[str, Any]]:
    """C2: the profile's audit trail, oldest first, as stored (column name: value)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT slot, action, result, status, consented_at, act_at, method, act_id,"
            " list_id, scope, evidence, phone_number, actor, claimed_at, reason,"
            " recorded_at FROM consent_history"
            " WHERE account_id = $1 AND profile_id = $2 ORDER BY id LIMIT $3",
            account_id,
            profile_id,
            HISTORY_LIMIT,
        )
    return [dict(r) for r in rows]


async def export_rows(pool: asyncpg.Pool, account_id: str) -> AsyncIterator[ExportRow]:
    """Every profile of the account with its email consent and suppressions, streamed
    through a cursor (an account's export need not fit in memory)."""
    async with pool.acquire() as conn, conn.transaction():
        async for r in conn.cursor(
            "SELECT s.profile_id, s.email, s.email_status, s.email_consented_at,"
            " s.email_method, coalesce(v.suppressions, '[]'::jsonb) AS sups"
            " FROM consent_state s LEFT JOIN suppression_view v"
            " USING (account_id, profile_id) WHERE s.account_id = $1"
            " ORDER BY s.profile_id",
            account_id,
            prefetch=EXPORT_PREFETCH,
        ):
            yield ExportRow(
                r["profile_id"],
                r["email"],
                r["email_status"],
                r["email_consented_at"],
                r["email_method"],
                r["sups"],
            )


async def not_opted_in(
    pool: asyncpg.Pool, account_id: str, after: str, limit: int
) -> list[dict[str, str]]:
    """C14: `profile_id` and `email` of profiles reachable by email that never subscribed,
    in profile id order after `after`."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT s.profile_id, s.email FROM consent_state s LEFT JOIN suppression_view v"
            " USING (account_id, profile_id)"
            " WHERE s.account_id = $1 AND s.profile_id > $2 AND s.email IS NOT NULL"
            " AND s.email_status = 'never_subscribed'"
            " AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements("
            "   coalesce(v.suppressions, '[]'::jsonb)) e"
            "   WHERE coalesce(e->>'channel', 'email') = 'email'"
            "   AND (e->>'list_id') IS NULL)"
            " ORDER BY s.profile_id LIMIT $3",
            account_id,
            after,
            limit,
        )
    return [{"profile_id": r["profile_id"], "email": r["email"]} for r in rows]
