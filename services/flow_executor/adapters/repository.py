"""The flow executor's PostgreSQL access: every query it runs, batched per call."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.contracts import FlowDefinition

_parsed: dict[tuple[str, str, int], FlowDefinition] = {}


def _flow(row: asyncpg.Record) -> FlowDefinition:
    # Parsing a definition costs more than the query; versions are immutable, so cache them.
    key = (row["account_id"], row["flow_id"], row["version"])
    flow = _parsed.get(key)
    if flow is None:
        flow = FlowDefinition.model_validate(row["definition"])
        _parsed[key] = flow
    return flow


async def save_flow(conn: asyncpg.Connection, flow: FlowDefinition) -> bool:
    """Store `flow` if it is newer than the stored version (F1); True when stored."""
    row = await conn.fetchrow(
        "INSERT INTO flows (account_id, flow_id, version, definition, deleted)"
        " VALUES ($1, $2, $3, $4::jsonb, false)"
        " ON CONFLICT (account_id, flow_id) DO UPDATE SET version = EXCLUDED.version,"
        " definition = EXCLUDED.definition, deleted = false, updated_at = now()"
        " WHERE flows.version < EXCLUDED.version RETURNING 1",
        flow.account_id,
        flow.flow_id,
        flow.version,
        json.loads(flow.model_dump_json()),
    )
    return row is not None


async def delete_flow(conn: asyncpg.Connection, account_id: str, flow_id: str) -> None:
    await conn.execute(
        "UPDATE flows SET deleted = true, updated_at = now() WHERE account_id = $1 AND flow_id = $2",
        account_id,
        flow_id,
    )


async def reject_flow(conn: asyncpg.Connection, flow: FlowDefinition, errors: list[str]) -> None:
    await conn.execute(
        "INSERT INTO flow_rejections (account_id, flow_id, version, errors) VALUES ($1,$2,$3,$4)"
        " ON CONFLICT DO NOTHING",
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
    keys = list(set(keys))
    rows = await conn.fetch(
        "SELECT f.account_id, f.flow_id, f.version, f.definition FROM flows f"
        " JOIN unnest($1::text[], $2::text[]) k(a, f2) ON f.account_id = k.a AND f.flow_id = k.f2"
        " WHERE NOT f.deleted",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["account_id"], r["flow_id"]): _flow(r) for r in rows}


async def insert_runs(conn: asyncpg.Connection, runs: Sequence[dict[str, Any]]) -> set[UUID]:
    """Insert runs; returns the ids that are new (an event enters a flow once, F2)."""
    if not runs:
        return set()
    rows = await conn.fetch(
        "INSERT INTO runs (run_id, account_id, flow_id, flow_version, event_id, profile_id,"
        " trigger_type, context)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[],"
        " $6::text[], $7::text[], $8::jsonb[])"
        " ON CONFLICT DO NOTHING RETURNING run_id",
        *[
            [r[c] for r in runs]
            for c in (
                "run_id",
                "account_id",
                "flow_id",
                "flow_version",
                "event_id",
                "profile_id",
                "trigger_type",
                "context",
            )
        ],
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
        *[list(col) for col in zip(*rows, strict=True)],
    )
    return {(r["run_id"], r["step_id"]) for r in inserted}


async def add_timers(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str, str | None, datetime]]
) -> None:
    if rows:
        await conn.executemany(
            "INSERT INTO timers (run_id, step_id, resume_at, due_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            rows,
        )


async def add_reviews(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, UUID, str, str, str]]
) -> None:
    if rows:
        await conn.executemany(
            "INSERT INTO reviews (alert_id, run_id, step_id, account_id, flow_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            rows,
        )


async def finish_runs(conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str]]) -> None:
    if rows:
        await conn.executemany("UPDATE runs SET status = $2 WHERE run_id = $1", rows)


async def claim_due_timers(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Lock and mark fired the due timers no other replica holds (fires each once)."""
    return await conn.fetch(
        "WITH due AS (SELECT run_id, step_id FROM timers WHERE fired_at IS NULL AND due_at <= now()"
        " ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE timers t SET fired_at = now() FROM due, runs r"
        " WHERE t.run_id = due.run_id AND t.step_id = due.step_id AND r.run_id = t.run_id"
        " RETURNING t.run_id, t.step_id, t.resume_at, r.account_id, r.flow_id, r.profile_id,"
        " r.event_id, r.trigger_type, r.context",
        limit,
    )


async def reachability(
    conn: asyncpg.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT r.account_id, r.profile_id, r.consent, r.suppressions FROM reachability r"
        " JOIN unnest($1::text[], $2::text[]) k(a, p) ON r.account_id = k.a AND r.profile_id = k.p",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["account_id"], r["profile_id"]): (r["consent"], r["suppressions"]) for r in rows}


async def save_consent(conn: asyncpg.Connection, rows: Sequence[tuple[str, str, Any, datetime]]) -> None:
    """Keep the newest consent state per profile (an older change arriving late is ignored)."""
    if rows:
        await conn.executemany(
            "INSERT INTO reachability (account_id, profile_id, consent, consent_at)"
            " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (account_id, profile_id) DO UPDATE"
            " SET consent = EXCLUDED.consent, consent_at = EXCLUDED.consent_at, updated_at = now()"
            " WHERE reachability.consent_at IS NULL OR reachability.consent_at <= EXCLUDED.consent_at",
            rows,
        )


async def save_suppressions(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, Any, datetime]]
) -> None:
    if rows:
        await conn.executemany(
            "INSERT INTO reachability (account_id, profile_id, suppressions, suppressions_at)"
            " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (account_id, profile_id) DO UPDATE"
            " SET suppressions = EXCLUDED.suppressions, suppressions_at = EXCLUDED.suppressions_at,"
            " updated_at = now() WHERE reachability.suppressions_at IS NULL"
            " OR reachability.suppressions_at <= EXCLUDED.suppressions_at",
            rows,
        )
