"""The reads behind the flow executor's HTTP API (A6, F5, F7): a flow's activity per
step, the actions held in review, and the read model of one profile. Each takes a
connection from the pool (or a unit of work's, where the answer decides a write)."""

from __future__ import annotations

from typing import Any

import asyncpg

_WAITING = (
    "SELECT step_id, n, profile_id, run_id, due_at, kind FROM ("
    "  SELECT t.step_id, r.profile_id, t.run_id, t.due_at, t.kind,"
    "   count(*) OVER (PARTITION BY t.step_id) AS n,"
    "   row_number() OVER (PARTITION BY t.step_id ORDER BY t.due_at) AS i"
    "  FROM timers t JOIN runs r USING (run_id)"
    "  WHERE r.account_id = $1 AND r.flow_id = $2 AND r.status = 'active'"
    "  AND t.fired_at IS NULL) w WHERE i <= $3"
)
_PASSED = (
    "SELECT t.step_id, count(*) AS n FROM timers t JOIN runs r USING (run_id)"
    " WHERE r.account_id = $1 AND r.flow_id = $2 AND t.outcome = 'fired'"
    " AND t.kind = 'delay' GROUP BY t.step_id"
)
_HELD = (
    "SELECT step_id, n, alert_id, profile_id, created_at FROM ("
    "  SELECT step_id, alert_id, profile_id, created_at,"
    "   count(*) OVER (PARTITION BY step_id) AS n,"
    "   row_number() OVER (PARTITION BY step_id ORDER BY created_at) AS i"
    "  FROM reviews WHERE account_id = $1 AND flow_id = $2 AND status = 'in_review') h"
    " WHERE i <= $3"
)
_OUTCOMES = (
    "SELECT step_id, outcome, reason, n, profile_id, at FROM ("
    "  SELECT e.step_id, e.outcome, e.reason, r.profile_id, e.at,"
    "   count(*) OVER (PARTITION BY e.step_id, e.outcome, e.reason) AS n,"
    "   row_number() OVER (PARTITION BY e.step_id, e.outcome, e.reason"
    "    ORDER BY e.at DESC) AS i"
    "  FROM step_executions e JOIN runs r USING (run_id)"
    "  WHERE e.account_id = $1 AND e.flow_id = $2 AND e.outcome IN ('executed', 'skipped')"
    " ) o WHERE i <= $3 ORDER BY step_id, outcome, reason, at DESC"
)


async def flow_activity(
    conn: asyncpg.Connection, account_id: str, flow_id: str, limit: int
) -> dict[str, Any] | None:
    """Per step: waiting profiles, held actions, executed and skipped (by reason), each
    with a full count and the newest `limit` entries. None for an unknown flow."""
    flow = await conn.fetchrow(
        "SELECT version, deleted, definition FROM flows WHERE account_id = $1 AND flow_id = $2",
        account_id,
        flow_id,
    )
    rejections = await conn.fetch(
        "SELECT version, errors FROM flow_rejections"
        " WHERE account_id = $1 AND flow_id = $2 ORDER BY version DESC LIMIT 10",
        account_id,
        flow_id,
    )
    if flow is None and not rejections:
        return None
    args = (account_id, flow_id, limit)
    return {
        "flow": flow,
        "rejections": rejections,
        "waiting": await conn.fetch(_WAITING, *args),
        "passed": await conn.fetch(_PASSED, account_id, flow_id),
        "held": await conn.fetch(_HELD, *args),
        "outcomes": await conn.fetch(_OUTCOMES, *args),
    }


async def reviews_in(conn: asyncpg.Connection, account_id: str, limit: int) -> list[Any]:
    """The actions an account has in review, oldest first."""
    return await conn.fetch(
        "SELECT alert_id, flow_id, step_id, profile_id, created_at FROM reviews"
        " WHERE account_id = $1 AND status = 'in_review' ORDER BY created_at LIMIT $2",
        account_id,
        limit,
    )


async def run_of_review(conn: asyncpg.Connection, alert_id: str) -> asyncpg.Record | None:
    """The account and status of a held action (the API checks both before deciding)."""
    return await conn.fetchrow(
        "SELECT r.account_id, r.status FROM reviews r WHERE r.alert_id = $1", alert_id
    )


async def profile_read_model(
    conn: asyncpg.Connection, account_id: str, profile_id: str
) -> asyncpg.Record | None:
    """Consent (with the receipts in force, C17), suppressions and profile data the
    executor holds about one profile."""
    return await conn.fetchrow(
        "SELECT k.a, r.consent, r.consent_at, r.receipts, r.suppressions, r.suppressions_at,"
        " pr.profile"
        " FROM (SELECT $1::text AS a, $2::text AS p) k"
        " LEFT JOIN reachability r ON r.account_id = k.a AND r.profile_id = k.p"
        " LEFT JOIN profiles pr ON pr.account_id = k.a AND pr.profile_id = k.p"
        " WHERE r.account_id IS NOT NULL OR pr.account_id IS NOT NULL",
        account_id,
        profile_id,
    )
