"""The suppression service's data about a person (P1–P3).

Suppressions and their history name a profile id, a channel and a reason, never an
address, so erase keeps them (an erased person stays suppressed) and blanks only the
profile attributes kept beside the bounce counter, with the address keys (I1) made from
them. A request may name the person by any spelling of their email or number (P1, I1).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.suppression.domain.rules import addresses, stored_spellings
from shared.contracts import PrivacyRequest
from shared.db.rows import affected, row_dicts


class SuppressionPrivacy:
    service = "suppression"

    async def resolve(self, conn: asyncpg.Connection, request: PrivacyRequest) -> list[str]:
        """The profile named by id, and every profile carrying the request's email or
        number in any spelling (I1): matched on the stored normal form (or, for a row
        not saved since migration 0003, the form it could fill in)."""
        ids = {request.profile_id} if request.profile_id else set()
        wanted = addresses(
            request.account_id,
            {"email": request.email, "phone_number": request.phone_number},
        )
        if wanted:
            emails = [f for a in wanted if a.channel == "email" for f in stored_spellings(a)]
            phones = [a.key for a in wanted if a.channel == "sms"]
            rows = await conn.fetch(
                "SELECT profile_id FROM suppression_profiles WHERE account_id = $1"
                " AND (email_key = ANY($2::text[]) OR phone_key = ANY($3::text[]))",
                request.account_id,
                emails,
                phones,
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
            " email_key = NULL, phone_key = NULL, updated_at = now()"
            " WHERE account_id = $1 AND profile_id = ANY($2::text[])",
            request.account_id,
            profile_ids,
        )
        return {"suppression_profiles": affected(status)}
