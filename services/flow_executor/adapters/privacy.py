"""The flow executor's data about a person (P1–P3): the profile read model, runs with
the event and profile they started from, steps taken, reviews, and reachability.

Erase keeps what the activity counts are made of (runs, step outcomes, timers, reviews
by id, flow and step) and removes every copy of the person: the profile, each run's
context, the held alert requests; runs still waiting end as `erased`. It keeps the
subjects of the person (hashed profile ids, keyed hashes of their addresses) so that no
email or SMS step messages them again (P2, `domain.erasure`).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.flow_executor.adapters.repository import PostgresFlowRepository
from services.flow_executor.domain.erasure import subjects
from shared.contracts import PrivacyRequest, utcnow
from shared.db.rows import affected, row_dicts
from shared.domain.identity import email_identity, phone_identity

# Every email and phone number the executor holds per profile: the profile read model,
# each run's context, the requests held in review, and the numbers SMS consent belongs
# to in the reachability read model.
_ADDRESSES = (
    "SELECT profile_id, profile->>'email' AS email, profile->>'phone_number' AS phone"
    " FROM profiles WHERE account_id = $1 {where}"
    " UNION SELECT profile_id, context->'person'->>'email',"
    " context->'person'->>'phone_number' FROM runs WHERE account_id = $1 {where}"
    " UNION SELECT profile_id, request->'profile'->>'email',"
    " request->'profile'->>'phone_number' FROM reviews WHERE account_id = $1 {where}"
    " UNION SELECT profile_id, NULL, consent->'sms_marketing'->>'phone_number'"
    " FROM reachability WHERE account_id = $1 {where}"
    " UNION SELECT profile_id, NULL, consent->'sms_transactional'->>'phone_number'"
    " FROM reachability WHERE account_id = $1 {where}"
)


class FlowPrivacy:
    """The executor's `PrivacyStore`. `secret` (`PRIVACY_HASH_SECRET`) keys the hashes
    an erase keeps of the person's addresses (P2); the service always passes it, and
    without it an erase holds the erased profile ids only."""

    service = "flow_executor"

    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret

    async def resolve(self, conn: asyncpg.Connection, request: PrivacyRequest) -> list[str]:
        """The request's profile id, and every profile that carries (or whose runs or
        reviews carried) its email or phone number in any spelling (I1). Addresses are
        compared in their normal form in Python: SQL's `lower()` knows neither NFC nor
        IDNA."""
        ids = {request.profile_id} if request.profile_id else set()
        email = email_identity(request.email)
        phone = phone_identity(request.phone_number)
        if email or phone:
            rows = await conn.fetch(_ADDRESSES.format(where=""), request.account_id)
            ids |= {
                r["profile_id"]
                for r in rows
                if (email and email_identity(r["email"]) == email)
                or (phone and phone_identity(r["phone"]) == phone)
            }
        return sorted(ids)

    async def export(
        self, conn: asyncpg.Connection, account_id: str, profile_ids: list[str]
    ) -> dict[str, Any]:
        args = (account_id, profile_ids)
        runs = await conn.fetch(
            "SELECT run_id, profile_id, flow_id, flow_version, event_id, trigger_type, context,"
            " status, created_at FROM runs WHERE account_id = $1"
            " AND profile_id = ANY($2::text[]) ORDER BY created_at LIMIT 5000",
            *args,
        )
        run_ids = [r["run_id"] for r in runs]
        return {
            "profiles": row_dicts(
                await conn.fetch(
                    "SELECT profile_id, profile, seen_at FROM profiles WHERE account_id = $1"
                    " AND profile_id = ANY($2::text[])",
                    *args,
                )
            ),
            "reachability": row_dicts(
                await conn.fetch(
                    "SELECT profile_id, consent, consent_at, receipts, suppressions,"
                    " suppressions_at FROM reachability"
                    " WHERE account_id = $1 AND profile_id = ANY($2::text[])",
                    *args,
                )
            ),
            "runs": row_dicts(runs),
            "sent_messages": row_dicts(
                await conn.fetch(
                    "SELECT profile_id, channel, sent_at FROM sent_messages"
                    " WHERE account_id = $1 AND profile_id = ANY($2::text[])",
                    *args,
                )
            ),
            "activity": row_dicts(
                await conn.fetch(
                    "SELECT run_id, flow_id, step_id, outcome, reason, at FROM step_executions"
                    " WHERE run_id = ANY($1::uuid[]) ORDER BY at",
                    run_ids,
                )
            ),
            "reviews": row_dicts(
                await conn.fetch(
                    "SELECT alert_id, run_id, flow_id, step_id, status, decided_by, decided_at,"
                    " created_at FROM reviews WHERE run_id = ANY($1::uuid[])",
                    run_ids,
                )
            ),
        }

    async def erase(
        self, conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
    ) -> dict[str, int]:
        out = {"erased_subjects": await self._hold(conn, request, profile_ids)}
        return out | await self._remove(conn, request, profile_ids)

    async def _hold(
        self, conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
    ) -> int:
        """P2: keep the subjects of the erased profiles (their ids, and the keyed hashes
        of every email and phone held for them and of the request's own), read before
        the rows that hold the addresses go; forget their resubscriptions."""
        rows = await conn.fetch(
            _ADDRESSES.format(where="AND profile_id = ANY($2::text[])"),
            request.account_id,
            profile_ids,
        )
        held = {s for pid in profile_ids for s in subjects(self._secret, pid)} | set(
            subjects(
                self._secret,
                None,
                [request.email, *(r["email"] for r in rows)],
                [request.phone_number, *(r["phone"] for r in rows)],
            )
        )
        await PostgresFlowRepository(conn).hold_erased(request.account_id, sorted(held), utcnow())
        await conn.execute(
            "DELETE FROM resubscriptions WHERE account_id = $1 AND profile_id = ANY($2::text[])",
            request.account_id,
            profile_ids,
        )
        return len(held)

    async def _remove(
        self, conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
    ) -> dict[str, int]:
        args = (request.account_id, profile_ids)
        runs = "SELECT run_id FROM runs WHERE account_id = $1 AND profile_id = ANY($2::text[])"
        out = {
            "timers": affected(
                await conn.execute(
                    "UPDATE timers SET fired_at = now(), outcome = 'erased'"
                    f" WHERE fired_at IS NULL AND run_id IN ({runs})",
                    *args,
                )
            ),
            "reviews": affected(
                await conn.execute(
                    "UPDATE reviews SET request = NULL, step = NULL,"
                    " status = CASE WHEN status = 'in_review' THEN 'erased' ELSE status END"
                    f" WHERE run_id IN ({runs})",
                    *args,
                )
            ),
            "runs": affected(
                await conn.execute(
                    "UPDATE runs SET context = '{}'::jsonb,"
                    " status = CASE WHEN status = 'active' THEN 'erased' ELSE status END"
                    " WHERE account_id = $1 AND profile_id = ANY($2::text[])",
                    *args,
                )
            ),
        }
        for table in ("profiles", "reachability", "sent_messages"):
            out[table] = affected(
                await conn.execute(
                    f"DELETE FROM {table} WHERE account_id = $1 AND profile_id = ANY($2::text[])",
                    *args,
                )
            )
        return out
