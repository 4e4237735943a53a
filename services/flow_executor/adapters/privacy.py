"""The flow executor's data about a person (P1–P3): the profile read model, runs with
the event and profile they started from, steps taken, reviews, and reachability.

Erase keeps what the activity counts are made of (runs, step outcomes, timers, reviews
by id, flow and step) and removes every copy of the person: the profile, each run's
context, the held alert requests; runs still waiting end as `erased`.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.contracts import PrivacyRequest
from shared.db.rows import affected, row_dicts
from shared.privacy import normalize_email, phone_forms


class FlowPrivacy:
    service = "flow_executor"

    async def resolve(self, conn: asyncpg.Connection, request: PrivacyRequest) -> list[str]:
        ids = {request.profile_id} if request.profile_id else set()
        if request.email or request.phone_number:
            email = normalize_email(request.email) if request.email else None
            phones = phone_forms(request.phone_number)
            rows = await conn.fetch(
                "SELECT profile_id FROM profiles WHERE account_id = $1"
                " AND (lower(profile->>'email') = $2 OR profile->>'phone_number' = ANY($3))"
                " UNION SELECT profile_id FROM runs WHERE account_id = $1"
                " AND (lower(context->'person'->>'email') = $2"
                " OR context->'person'->>'phone_number' = ANY($3))",
                request.account_id,
                email,
                phones,
            )
            ids |= {r["profile_id"] for r in rows}
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
                    "SELECT profile_id, consent, consent_at, suppressions, suppressions_at"
                    " FROM reachability WHERE account_id = $1 AND profile_id = ANY($2::text[])",
                    *args,
                )
            ),
            "runs": row_dicts(runs),
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
        for table in ("profiles", "reachability"):
            out[table] = affected(
                await conn.execute(
                    f"DELETE FROM {table} WHERE account_id = $1 AND profile_id = ANY($2::text[])",
                    *args,
                )
            )
        return out
