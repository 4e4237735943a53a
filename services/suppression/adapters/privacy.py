"""The suppression service's data about a person (P1–P3).

Suppressions and their history name a profile id, a channel and a reason, never an
address, so erase keeps them (an erased person stays suppressed) and blanks only the
profile attributes kept beside the bounce counter.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.contracts import PrivacyRequest
from shared.db.rows import affected, row_dicts
from shared.privacy import normalize_email, phone_forms


class SuppressionPrivacy:
    service = "suppression"

    async def resolve(self, conn: asyncpg.Connection, request: PrivacyRequest) -> list[str]:
        ids = {request.profile_id} if request.profile_id else set()
        if request.email or request.phone_number:
            rows = await conn.fetch(
                "SELECT profile_id FROM suppression_profiles WHERE account_id = $1"
                " AND (lower(profile->>'email') = $2 OR profile->>'phone_number' = ANY($3))",
                request.account_id,
                normalize_email(request.email) if request.email else None,
                phone_forms(request.phone_number),
            )
            ids |= {r["profile_id"] for r in rows}
        return sorted(ids)

    async def export(
        self, conn: asyncpg.Connection, account_id: str, profile_ids: list[str]
    ) -> dict[str, Any]:
        args = (account_id, profile_ids)
        where = " WHERE account_id = $1 AND profile_id = ANY($2::text[])"
        return {
            "profiles": row_dicts(
                await conn.fetch(
                    "SELECT profile_id, profile, soft_bounces, updated_at FROM"
                    " suppression_profiles" + where + " ORDER BY profile_id",
                    *args,
                )
            ),
            "suppressions": row_dicts(
                await conn.fetch(
                    "SELECT profile_id, channel, reason, nullif(list_key, '') AS list_id, since,"
                    " command_id FROM suppressions" + where + " ORDER BY since",
                    *args,
                )
            ),
            "history": row_dicts(
                await conn.fetch(
                    "SELECT profile_id, change, channel, reason, list_id, source, recorded_at"
                    " FROM suppression_history" + where + " ORDER BY id",
                    *args,
                )
            ),
        }

    async def erase(
        self, conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
    ) -> dict[str, int]:
        status = await conn.execute(
            "UPDATE suppression_profiles SET profile = jsonb_build_object('id', profile_id),"
            " updated_at = now() WHERE account_id = $1 AND profile_id = ANY($2::text[])",
            request.account_id,
            profile_ids,
        )
        return {"suppression_profiles": affected(status)}
