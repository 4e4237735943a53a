"""The flow executor's PostgreSQL access: every query it runs, batched per call.

Hot-path writes take a whole batch in one statement (`unnest` arrays) or one pipelined
`executemany`; nothing here loops over rows with a round trip each. Upserts of per-profile
rows go in (account, profile) order, so that concurrent batches from different consumers
lock rows in the same order and cannot deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.contracts import FlowDefinition
from shared.db.batches import columns, rounds

_parsed: dict[tuple[str, str, int], FlowDefinition] = {}


def _by_profile(row: tuple[Any, ...]) -> tuple[str, str]:
    return row[0], row[1]


def _json_third(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """`unnest` arguments of (account, profile, JSON value, time) rows, the value sent as
    text: a list inside a `jsonb[]` argument would be taken for an array dimension. A
    value already serialised (`str`, e.g. from pydantic's `model_dump_json`) is kept."""
    cols = columns(rows, 4)
    cols[2] = [v if isinstance(v, str) else json.dumps(v) for v in cols[2]]
    return cols


def _flow(row: asyncpg.Record) -> FlowDefinition:
    # Parsing a definition costs more than the query; versions are immutable, so cache them.
    key = (row["account_id"], row["flow_id"], row["version"])
    flow = _parsed.get(key)
    if flow is None:
        flow = FlowDefinition.model_validate(row["definition"])
        _parsed[key] = flow
    return flow


# --- definitions (F1) ------------------------------------------------------------------


async def save_flow(conn: asyncpg.Connection, flow: FlowDefinition) -> bool:
    """Store `flow` if it is newer than the stored version, or if the stored flow was
    deleted (a deleted flow may be re-created from any version); True when stored."""
    row = await conn.fetchrow(
        "INSERT INTO flows (account_id, flow_id, version, definition, deleted)"
        " VALUES ($1, $2, $3, $4::jsonb, false)"
        " ON CONFLICT (account_id, flow_id) DO UPDATE SET version = EXCLUDED.version,"
        " definition = EXCLUDED.definition, deleted = false, updated_at = now()"
        " WHERE flows.deleted OR flows.version < EXCLUDED.version RETURNING 1",
        flow.account_id,
        flow.flow_id,
        flow.version,
        json.loads(flow.model_dump_json()),
    )
    return row is not None


async def delete_flow(
    conn: asyncpg.Connection, account_id: str, flow_id: str
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """Mark the flow deleted, cancel its waiting delays and end its active runs, and
    cancel its held reviews. Returns (exited runs, cancelled reviews)."""
    await conn.execute(
        "UPDATE flows SET deleted = true, updated_at = now()"
        " WHERE account_id = $1 AND flow_id = $2",
        account_id,
        flow_id,
    )
    await conn.execute(
        "UPDATE timers t SET fired_at = now(), outcome = 'cancelled' FROM runs r"
        " WHERE r.run_id = t.run_id AND r.account_id = $1 AND r.flow_id = $2"
        " AND t.fired_at IS NULL",
        account_id,
        flow_id,
    )
    runs = await conn.fetch(
        "UPDATE runs SET status = 'exited' WHERE account_id = $1 AND flow_id = $2"
        " AND status = 'active' RETURNING run_id, profile_id",
        account_id,
        flow_id,
    )
    reviews = await conn.fetch(
        "UPDATE reviews SET status = 'cancelled', decided_at = now(), decided_by = 'flow deleted'"
        " WHERE account_id = $1 AND flow_id = $2 AND status = 'in_review'"
        " RETURNING alert_id, run_id, step_id, profile_id",
        account_id,
        flow_id,
    )
    if reviews:
        await conn.execute(
            "UPDATE step_executions e SET outcome = 'skipped', reason = $3, at = now()"
            " FROM unnest($1::uuid[], $2::text[]) k(run_id, step_id)"
            " WHERE e.run_id = k.run_id AND e.step_id = k.step_id",
            [r["run_id"] for r in reviews],
            [r["step_id"] for r in reviews],
            "Skipped: flow deleted",
        )
    return runs, reviews


async def reject_flow(conn: asyncpg.Connection, flow: FlowDefinition, errors: list[str]) -> None:
    await conn.execute(
        "INSERT INTO flow_rejections (account_id, flow_id, version, errors) VALUES ($1,$2,$3,$4)"
        " ON CONFLICT (account_id, flow_id, version) DO UPDATE SET errors = EXCLUDED.errors,"
        " rejected_at = now()",
        flow.account_id,
        flow.flow_id,
        flow.version,
        errors,
    )


async def live_flows(
    conn: asyncpg.Connection, accounts: Iterable[str]
) -> dict[str, list[FlowDefinition]]:
    """The flows in force (not deleted) for each account."""
    rows = await conn.fetch(
        "SELECT account_id, flow_id, version, definition FROM flows"
        " WHERE account_id = ANY($1::text[]) AND NOT deleted",
        list(set(accounts)),
    )
    found: dict[str, list[FlowDefinition]] = {}
    for row in rows:
        found.setdefault(row["account_id"], []).append(_flow(row))
    return found


async def flows_by_key(
    conn: asyncpg.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], FlowDefinition]:
    """The versions in force of the given (account, flow) pairs; deleted ones are absent."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT f.account_id, f.flow_id, f.version, f.definition FROM flows f"
        " JOIN unnest($1::text[], $2::text[]) k(a, f2) ON f.account_id = k.a AND f.flow_id = k.f2"
        " WHERE NOT f.deleted",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["account_id"], r["flow_id"]): _flow(r) for r in rows}


# --- runs and steps (F2-F5) ----------------------------------------------------------


async def insert_runs(conn: asyncpg.Connection, runs: Sequence[dict[str, Any]]) -> set[UUID]:
    """Insert runs; returns the ids that are new (an event enters a flow once, F2)."""
    if not runs:
        return set()
    columns = (
        "run_id",
        "account_id",
        "flow_id",
        "flow_version",
        "event_id",
        "profile_id",
        "trigger_type",
        "context",
    )
    rows = await conn.fetch(
        "INSERT INTO runs (run_id, account_id, flow_id, flow_version, event_id, profile_id,"
        " trigger_type, context)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[],"
        " $6::text[], $7::text[], $8::jsonb[])"
        " ON CONFLICT DO NOTHING RETURNING run_id",
        *[[r[c] for r in runs] for c in columns],
    )
    return {r["run_id"] for r in rows}


async def record_executions(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str, str, str, str, str | None]]
) -> set[tuple[UUID, str]]:
    """Insert (run, step, account, flow, outcome, reason); returns those that are new (F4)."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        "INSERT INTO step_executions (run_id, step_id, account_id, flow_id, outcome, reason)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[]) ON CONFLICT DO NOTHING RETURNING run_id, step_id",
        *columns(rows, 6),
    )
    return {(r["run_id"], r["step_id"]) for r in inserted}


async def add_timers(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str, datetime]]
) -> set[tuple[UUID, str]]:
    """Store delays (run, delay step, due time); returns those that are new."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        "INSERT INTO timers (run_id, step_id, due_at)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[])"
        " ON CONFLICT DO NOTHING RETURNING run_id, step_id",
        *columns(rows, 3),
    )
    return {(r["run_id"], r["step_id"]) for r in inserted}


async def add_reviews(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Hold actions for review: (alert_id, run, step, account, flow, profile, step json,
    request json)."""
    if rows:
        await conn.executemany(
            "INSERT INTO reviews (alert_id, run_id, step_id, account_id, flow_id, profile_id,"
            " step, request) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)"
            " ON CONFLICT DO NOTHING",
            rows,
        )


async def finish_runs(conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str]]) -> None:
    """End active runs as `completed` or `exited`."""
    if rows:
        await conn.execute(
            "UPDATE runs r SET status = k.status FROM unnest($1::uuid[], $2::text[])"
            " k(run_id, status) WHERE r.run_id = k.run_id AND r.status = 'active'",
            [r[0] for r in rows],
            [r[1] for r in rows],
        )


async def claim_due_timers(
    conn: asyncpg.Connection, limit: int, replica: str
) -> list[asyncpg.Record]:
    """Lock and mark fired the due timers no other replica holds (fires each once): the
    mark commits with the walk's effects, and a crash before the commit leaves the timer
    due for the next pass."""
    return await conn.fetch(
        "WITH due AS (SELECT run_id, step_id FROM timers WHERE fired_at IS NULL"
        " AND due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE timers t SET fired_at = now(), outcome = 'fired', fired_by = $2"
        " FROM due, runs r"
        " WHERE t.run_id = due.run_id AND t.step_id = due.step_id AND r.run_id = t.run_id"
        " RETURNING t.run_id, t.step_id, r.account_id, r.flow_id, r.profile_id,"
        " r.trigger_type, r.context",
        limit,
        replica,
    )


async def fail_next_due_timer(conn: asyncpg.Connection, replica: str, reason: str) -> bool:
    """Set aside the earliest due timer (its walk raised every time): marked fired with
    outcome `failed: <reason>` so the scheduler moves past it. False if none is due."""
    row = await conn.fetchrow(
        "WITH due AS (SELECT run_id, step_id FROM timers WHERE fired_at IS NULL"
        " AND due_at <= now() ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " UPDATE timers t SET fired_at = now(), outcome = $2, fired_by = $1"
        " FROM due WHERE t.run_id = due.run_id AND t.step_id = due.step_id"
        " RETURNING t.run_id",
        replica,
        f"failed: {reason}"[:2000],
    )
    return row is not None


async def run_of_review(conn: asyncpg.Connection, alert_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT r.account_id, r.status FROM reviews r WHERE r.alert_id = $1", alert_id
    )


async def decide_review(
    conn: asyncpg.Connection, alert_id: str, status: str, by: str
) -> asyncpg.Record | None:
    """Move a held action out of review; None if it is unknown or already decided."""
    return await conn.fetchrow(
        "UPDATE reviews v SET status = $2, decided_by = $3, decided_at = now()"
        " FROM runs r WHERE v.alert_id = $1 AND v.status = 'in_review' AND r.run_id = v.run_id"
        " RETURNING v.run_id, v.step_id, v.account_id, v.flow_id, v.step, v.request,"
        " r.profile_id",
        alert_id,
        status,
        by,
    )


async def set_execution(
    conn: asyncpg.Connection, run_id: UUID, step_id: str, outcome: str, reason: str | None
) -> None:
    await conn.execute(
        "UPDATE step_executions SET outcome = $3, reason = $4, at = now()"
        " WHERE run_id = $1 AND step_id = $2",
        run_id,
        step_id,
        outcome,
        reason,
    )


# --- the read model: profiles, consent, suppressions (F3, F7) -------------------------


async def upsert_profiles(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, dict[str, Any] | str, datetime]]
) -> None:
    """Merge the newest profile data (a dict or its JSON text): fields given replace older
    ones, custom properties are merged key by key; data older than what is stored is
    ignored."""
    if rows:
        for batch in rounds(rows, _by_profile):
            await conn.execute(
                "INSERT INTO profiles (account_id, profile_id, profile, seen_at)"
                " SELECT a, p, j::jsonb, t FROM unnest($1::text[], $2::text[], $3::text[],"
                " $4::timestamptz[]) AS u(a, p, j, t)"
                " ON CONFLICT (account_id, profile_id) DO UPDATE"
                " SET profile = profiles.profile"
                " || jsonb_strip_nulls(EXCLUDED.profile - 'properties')"
                " || jsonb_build_object('properties',"
                "    coalesce(profiles.profile -> 'properties', '{}'::jsonb)"
                "    || coalesce(EXCLUDED.profile -> 'properties', '{}'::jsonb)),"
                " seen_at = EXCLUDED.seen_at WHERE profiles.seen_at <= EXCLUDED.seen_at",
                *_json_third(batch),
            )


async def walk_state(
    conn: asyncpg.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Any, list[dict[str, Any]], dict[str, Any] | None]]:
    """(consent state, suppressions, newest profile) per (account, profile)."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT k.a, k.p, r.consent, r.suppressions, pr.profile"
        " FROM unnest($1::text[], $2::text[]) k(a, p)"
        " LEFT JOIN reachability r ON r.account_id = k.a AND r.profile_id = k.p"
        " LEFT JOIN profiles pr ON pr.account_id = k.a AND pr.profile_id = k.p",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["a"], r["p"]): (r["consent"], r["suppressions"] or [], r["profile"]) for r in rows}


async def save_consent(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, Any, datetime]]
) -> None:
    """Keep the newest consent state per profile (an older change arriving late is ignored)."""
    if rows:
        for batch in rounds(rows, _by_profile):
            await conn.execute(
                "INSERT INTO reachability (account_id, profile_id, consent, consent_at)"
                " SELECT a, p, j::jsonb, t FROM unnest($1::text[], $2::text[], $3::text[],"
                " $4::timestamptz[]) AS u(a, p, j, t)"
                " ON CONFLICT (account_id, profile_id) DO UPDATE"
                " SET consent = EXCLUDED.consent, consent_at = EXCLUDED.consent_at,"
                " updated_at = now() WHERE reachability.consent_at IS NULL"
                " OR reachability.consent_at <= EXCLUDED.consent_at",
                *_json_third(batch),
            )


async def save_suppressions(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, Any, datetime]]
) -> None:
    """Keep the newest list of suppressions in force per profile."""
    if rows:
        for batch in rounds(rows, _by_profile):
            await conn.execute(
                "INSERT INTO reachability (account_id, profile_id, suppressions,"
                " suppressions_at)"
                " SELECT a, p, j::jsonb, t FROM unnest($1::text[], $2::text[], $3::text[],"
                " $4::timestamptz[]) AS u(a, p, j, t)"
                " ON CONFLICT (account_id, profile_id) DO UPDATE"
                " SET suppressions = EXCLUDED.suppressions,"
                " suppressions_at = EXCLUDED.suppressions_at, updated_at = now()"
                " WHERE reachability.suppressions_at IS NULL"
                " OR reachability.suppressions_at <= EXCLUDED.suppressions_at",
                *_json_third(batch),
            )


# --- reading activity (A6, HTTP API) ---------------------------------------------------


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
    waiting = await conn.fetch(
        "SELECT step_id, n, profile_id, run_id, due_at FROM ("
        "  SELECT t.step_id, r.profile_id, t.run_id, t.due_at,"
        "   count(*) OVER (PARTITION BY t.step_id) AS n,"
        "   row_number() OVER (PARTITION BY t.step_id ORDER BY t.due_at) AS i"
        "  FROM timers t JOIN runs r USING (run_id)"
        "  WHERE r.account_id = $1 AND r.flow_id = $2 AND r.status = 'active'"
        "  AND t.fired_at IS NULL) w WHERE i <= $3",
        account_id,
        flow_id,
        limit,
    )
    passed = await conn.fetch(
        "SELECT t.step_id, count(*) AS n FROM timers t JOIN runs r USING (run_id)"
        " WHERE r.account_id = $1 AND r.flow_id = $2 AND t.outcome = 'fired'"
        " GROUP BY t.step_id",
        account_id,
        flow_id,
    )
    held = await conn.fetch(
        "SELECT step_id, n, alert_id, profile_id, created_at FROM ("
        "  SELECT step_id, alert_id, profile_id, created_at,"
        "   count(*) OVER (PARTITION BY step_id) AS n,"
        "   row_number() OVER (PARTITION BY step_id ORDER BY created_at) AS i"
        "  FROM reviews WHERE account_id = $1 AND flow_id = $2 AND status = 'in_review') h"
        " WHERE i <= $3",
        account_id,
        flow_id,
        limit,
    )
    outcomes = await conn.fetch(
        "SELECT step_id, outcome, reason, n, profile_id, at FROM ("
        "  SELECT e.step_id, e.outcome, e.reason, r.profile_id, e.at,"
        "   count(*) OVER (PARTITION BY e.step_id, e.outcome, e.reason) AS n,"
        "   row_number() OVER (PARTITION BY e.step_id, e.outcome, e.reason"
        "    ORDER BY e.at DESC) AS i"
        "  FROM step_executions e JOIN runs r USING (run_id)"
        "  WHERE e.account_id = $1 AND e.flow_id = $2 AND e.outcome IN ('executed', 'skipped')"
        " ) o WHERE i <= $3 ORDER BY step_id, outcome, reason, at DESC",
        account_id,
        flow_id,
        limit,
    )
    return {
        "flow": flow,
        "rejections": rejections,
        "waiting": waiting,
        "passed": passed,
        "held": held,
        "outcomes": outcomes,
    }


async def reviews_in(conn: asyncpg.Connection, account_id: str, limit: int) -> list[Any]:
    """The actions an account has in review, oldest first."""
    return await conn.fetch(
        "SELECT alert_id, flow_id, step_id, profile_id, created_at FROM reviews"
        " WHERE account_id = $1 AND status = 'in_review' ORDER BY created_at LIMIT $2",
        account_id,
        limit,
    )


async def profile_read_model(
    conn: asyncpg.Connection, account_id: str, profile_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT k.a, r.consent, r.consent_at, r.suppressions, r.suppressions_at, pr.profile"
        " FROM (SELECT $1::text AS a, $2::text AS p) k"
        " LEFT JOIN reachability r ON r.account_id = k.a AND r.profile_id = k.p"
        " LEFT JOIN profiles pr ON pr.account_id = k.a AND pr.profile_id = k.p"
        " WHERE r.account_id IS NOT NULL OR pr.account_id IS NOT NULL",
        account_id,
        profile_id,
    )
