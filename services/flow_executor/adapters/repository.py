"""The flow executor's PostgreSQL repository: every write and hot-path read its use
cases make, batched per call, on one unit of work's connection.

Hot-path writes take a whole batch in one statement (`unnest` arrays) or one pipelined
`executemany`; nothing here loops over rows with a round trip each. Upserts of per-profile
rows go in (account, profile) order, so that concurrent batches from different consumers
lock rows in the same order and cannot deadlock. It takes and returns domain objects and
the records of `services.flow_executor.ports`; the HTTP API's reads are in `read_model`.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic_core import from_json

from services.flow_executor.domain.erasure import ErasureHold
from services.flow_executor.domain.planning import RunEnd, Sent, StepExecution, Timer
from services.flow_executor.domain.runs import DueTimer, ProfileKey, ProfileState, Run, StepKey
from services.flow_executor.domain.sending_window import SendingSettings
from services.flow_executor.ports import (
    FlowDeletion,
    HeldReview,
    Observed,
    Resubscribed,
    ReviewRef,
    RunRef,
    SubjectQuery,
)
from shared.contracts import FlowDefinition
from shared.contracts.base import json_bytes
from shared.db.batches import columns, rounds
from shared.db.locks import lock_all

_parsed: dict[tuple[str, str, int], FlowDefinition] = {}

FLOW_DELETED = "Skipped: flow deleted"


_by_profile = operator.attrgetter("account_id", "profile_id")
"""(account, profile) of a fact: the key its upserts are cut into rounds and ordered by
(in C: it is asked twice per row of every batch)."""


def _fact_columns(rows: Sequence[Observed]) -> list[list[Any]]:
    """`unnest` arguments of facts: (account, profile, JSON value as text, time). A list
    inside a `jsonb[]` argument would be taken for an array dimension, so values go as
    text; a value already serialised (`str`, e.g. `model_dump_json`) is kept."""
    return [
        [r.account_id for r in rows],
        [r.profile_id for r in rows],
        [r.value if isinstance(r.value, str) else json_bytes(r.value).decode() for r in rows],
        [r.at for r in rows],
    ]


def _profile_rows(rows: Sequence[Observed]) -> str:
    """Profile facts as one JSON array of `[account, profile, data, time]` (the time in
    RFC 3339, as PostgreSQL reads a `timestamptz`); data given as JSON text is embedded
    as the value it holds. A NaN or infinite number is written as null, as every JSON
    column is (`json_bytes`)."""
    return json_bytes(
        [
            [r.account_id, r.profile_id, from_json(v) if isinstance(v := r.value, str) else v, r.at]
            for r in rows
        ]
    ).decode()


def receipts_in_force(stored: Any) -> dict[str, str | None]:
    """`{slot: receipt_id}` of the `receipts` column (C17)."""
    return {slot: (entry or {}).get("receipt_id") for slot, entry in (stored or {}).items()}


_MERGED_PROFILE = (
    "(CASE WHEN profiles.seen_at <= {at} THEN"
    "   profiles.profile || jsonb_strip_nulls({new} - 'properties')"
    "   || jsonb_build_object('properties',"
    "      coalesce(profiles.profile -> 'properties', '{{}}'::jsonb)"
    "      || coalesce({new} -> 'properties', '{{}}'::jsonb))"
    " ELSE jsonb_strip_nulls({new} - 'properties')"
    "   || jsonb_strip_nulls(profiles.profile - 'properties')"
    "   || jsonb_build_object('properties',"
    "      coalesce({new} -> 'properties', '{{}}'::jsonb)"
    "      || coalesce(profiles.profile -> 'properties', '{{}}'::jsonb)) END)"
)
"""F3: the stored profile with newer data's fields (or only the unknown fields of older
data) merged in; custom properties merge key by key. `{new}` and `{at}` name the data
merged in and its time."""

_CHANGES = "(profiles.seen_at < {at} OR profiles.profile IS DISTINCT FROM " + _MERGED_PROFILE + ")"
"""Whether merging `{new}` (of time `{at}`) changes the stored row: the data, or the time
later merges are ordered by."""
_NEW, _AT = "EXCLUDED.profile", "EXCLUDED.seen_at"


def flow_of(row: asyncpg.Record) -> FlowDefinition:
    """The definition stored in a `flows` row."""
    # Parsing a definition costs more than the query; versions are immutable, so cache them.
    key = (row["account_id"], row["flow_id"], row["version"])
    flow = _parsed.get(key)
    if flow is None:
        flow = FlowDefinition.model_validate(row["definition"])
        _parsed[key] = flow
    return flow


class PostgresFlowRepository:
    """`ports.FlowRepository` (every concern of `ports.FlowWork`) on an asyncpg
    connection (the unit of work's, so that everything commits with the batch's outbox
    rows)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # --- definitions (F1) --------------------------------------------------------------

    async def save_flow(self, flow: FlowDefinition) -> bool:
        """Store `flow` if it is newer than the stored version, or if the stored flow was
        deleted (a deleted flow may be re-created from any version); True when stored."""
        row = await self.conn.fetchrow(
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

    async def delete_flow(self, account_id: str, flow_id: str) -> FlowDeletion:
        """Mark the flow deleted, cancel its waiting delays and end its active runs, and
        cancel its held reviews (their steps recorded as skipped)."""
        conn, args = self.conn, (account_id, flow_id)
        await conn.execute(
            "UPDATE flows SET deleted = true, updated_at = now()"
            " WHERE account_id = $1 AND flow_id = $2",
            *args,
        )
        await conn.execute(
            "UPDATE timers t SET fired_at = now(), outcome = 'cancelled' FROM runs r"
            " WHERE r.run_id = t.run_id AND r.account_id = $1 AND r.flow_id = $2"
            " AND t.fired_at IS NULL",
            *args,
        )
        runs = await conn.fetch(
            "UPDATE runs SET status = 'exited' WHERE account_id = $1 AND flow_id = $2"
            " AND status = 'active' RETURNING run_id, profile_id",
            *args,
        )
        reviews = await conn.fetch(
            "UPDATE reviews SET status = 'cancelled', decided_at = now(),"
            " decided_by = 'flow deleted'"
            " WHERE account_id = $1 AND flow_id = $2 AND status = 'in_review'"
            " RETURNING alert_id, run_id, step_id, profile_id",
            *args,
        )
        if reviews:
            await conn.execute(
                "UPDATE step_executions e SET outcome = 'skipped', reason = $3, at = now()"
                " FROM unnest($1::uuid[], $2::text[]) k(run_id, step_id)"
                " WHERE e.run_id = k.run_id AND e.step_id = k.step_id",
                [r["run_id"] for r in reviews],
                [r["step_id"] for r in reviews],
                FLOW_DELETED,
            )
        return FlowDeletion(
            [RunRef(r["run_id"], r["profile_id"]) for r in runs],
            [ReviewRef(r["alert_id"], r["run_id"], r["step_id"], r["profile_id"]) for r in reviews],
        )

    async def reject_flow(self, flow: FlowDefinition, errors: list[str]) -> None:
        """Record the reasons a version was rejected (shown by the activity API)."""
        await self.conn.execute(
            "INSERT INTO flow_rejections (account_id, flow_id, version, errors)"
            " VALUES ($1,$2,$3,$4) ON CONFLICT (account_id, flow_id, version)"
            " DO UPDATE SET errors = EXCLUDED.errors, rejected_at = now()",
            flow.account_id,
            flow.flow_id,
            flow.version,
            errors,
        )

    async def live_flows(self, accounts: Iterable[str]) -> dict[str, list[FlowDefinition]]:
        """The flows in force (not deleted) for each account."""
        rows = await self.conn.fetch(
            "SELECT account_id, flow_id, version, definition FROM flows"
            " WHERE account_id = ANY($1::text[]) AND NOT deleted",
            list(set(accounts)),
        )
        found: dict[str, list[FlowDefinition]] = {}
        for row in rows:
            found.setdefault(row["account_id"], []).append(flow_of(row))
        return found

    async def flows_by_key(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], FlowDefinition]:
        """The versions in force of the given (account, flow) pairs; deleted ones are
        absent."""
        keys = list(set(keys))
        if not keys:
            return {}
        rows = await self.conn.fetch(
            "SELECT f.account_id, f.flow_id, f.version, f.definition FROM flows f"
            " JOIN unnest($1::text[], $2::text[]) k(a, f2)"
            " ON f.account_id = k.a AND f.flow_id = k.f2 WHERE NOT f.deleted",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(r["account_id"], r["flow_id"]): flow_of(r) for r in rows}

    # --- runs and steps (F2-F5) --------------------------------------------------------

    async def insert_runs(
        self, runs: Sequence[Run], ended: Mapping[UUID, str] | None = None
    ) -> set[UUID]:
        """Insert runs, active or with the status `ended` gives them; returns the ids
        that are new (an event enters a flow once, F2)."""
        if not runs:
            return set()
        ended = ended or {}
        rows = await self.conn.fetch(
            "INSERT INTO runs (run_id, account_id, flow_id, flow_version, event_id, profile_id,"
            " trigger_type, context, headers, status)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[],"
            " $6::text[], $7::text[], $8::jsonb[], $9::jsonb[], $10::text[])"
            " ON CONFLICT DO NOTHING RETURNING run_id",
            [r.run_id for r in runs],
            [r.account_id for r in runs],
            [r.flow_id for r in runs],
            [r.flow.version for r in runs],
            [r.event_id for r in runs],
            [r.profile_id for r in runs],
            [r.trigger_type for r in runs],
            [r.context for r in runs],
            [dict(r.trace) if r.trace is not None else None for r in runs],
            [ended.get(r.run_id, "active") for r in runs],
        )
        return {r["run_id"] for r in rows}

    async def record_executions(self, rows: Sequence[StepExecution]) -> set[StepKey]:
        """Insert step outcomes; returns the (run, step) keys that are new (F4)."""
        if not rows:
            return set()
        inserted = await self.conn.fetch(
            "INSERT INTO step_executions (run_id, step_id, account_id, flow_id, outcome, reason)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::text[]) ON CONFLICT DO NOTHING RETURNING run_id, step_id",
            [r.run_id for r in rows],
            [r.step_id for r in rows],
            [r.account_id for r in rows],
            [r.flow_id for r in rows],
            [r.outcome for r in rows],
            [r.reason for r in rows],
        )
        return {(r["run_id"], r["step_id"]) for r in inserted}

    async def add_timers(self, rows: Sequence[Timer]) -> set[StepKey]:
        """Store delays and quiet-hours holds; returns the (run, step) keys that are new.
        A fired timer under the same key is armed again (a held step held again, F8)."""
        if not rows:
            return set()
        inserted = await self.conn.fetch(
            "INSERT INTO timers (run_id, step_id, due_at, kind)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[])"
            " ON CONFLICT (run_id, step_id) DO UPDATE SET due_at = EXCLUDED.due_at,"
            " kind = EXCLUDED.kind, fired_at = NULL, outcome = NULL, fired_by = NULL"
            " WHERE timers.outcome = 'fired' RETURNING run_id, step_id",
            *columns([(r.run_id, r.step_id, r.due_at, r.kind) for r in rows], 4),
        )
        return {(r["run_id"], r["step_id"]) for r in inserted}

    async def add_reviews(self, rows: Sequence[HeldReview]) -> None:
        """Hold actions for review, with the step and request as held."""
        if rows:
            await self.conn.executemany(
                "INSERT INTO reviews (alert_id, run_id, step_id, account_id, flow_id,"
                " profile_id, step, request)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb) ON CONFLICT DO NOTHING",
                [
                    (
                        r.alert_id,
                        r.run_id,
                        r.step_id,
                        r.account_id,
                        r.flow_id,
                        r.profile_id,
                        r.step,
                        r.request,
                    )
                    for r in rows
                ],
            )

    async def finish_runs(self, rows: Sequence[RunEnd]) -> None:
        """End active runs as `completed` or `exited`."""
        if rows:
            await self.conn.execute(
                "UPDATE runs r SET status = k.status FROM unnest($1::uuid[], $2::text[])"
                " k(run_id, status) WHERE r.run_id = k.run_id AND r.status = 'active'",
                [r.run_id for r in rows],
                [r.status for r in rows],
            )

    async def claim_due_timers(self, limit: int, replica: str) -> list[DueTimer]:
        """Lock and mark fired the due timers no other replica holds (fires each once):
        the mark commits with the walk's effects, and a crash before the commit leaves
        the timer due for the next pass."""
        rows = await self.conn.fetch(
            "WITH due AS (SELECT run_id, step_id FROM timers WHERE fired_at IS NULL"
            " AND due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
            " UPDATE timers t SET fired_at = now(), outcome = 'fired', fired_by = $2"
            " FROM due, runs r"
            " WHERE t.run_id = due.run_id AND t.step_id = due.step_id AND r.run_id = t.run_id"
            " RETURNING t.run_id, t.step_id, r.account_id, r.flow_id, r.profile_id,"
            " r.trigger_type, r.context, r.headers, t.kind",
            limit,
            replica,
        )
        return [
            DueTimer(
                r["run_id"],
                r["step_id"],
                r["account_id"],
                r["flow_id"],
                r["profile_id"],
                r["trigger_type"],
                r["context"],
                r["headers"],
                r["kind"],
            )
            for r in rows
        ]

    async def fail_next_due_timer(self, replica: str, reason: str) -> bool:
        """Set aside the earliest due timer (its walk raised every time): marked fired
        with outcome `failed: <reason>` so the scheduler moves past it. False if none is
        due."""
        row = await self.conn.fetchrow(
            "WITH due AS (SELECT run_id, step_id FROM timers WHERE fired_at IS NULL"
            " AND due_at <= now() ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " UPDATE timers t SET fired_at = now(), outcome = $2, fired_by = $1"
            " FROM due WHERE t.run_id = due.run_id AND t.step_id = due.step_id"
            " RETURNING t.run_id",
            replica,
            f"failed: {reason}"[:2000],
        )
        return row is not None

    async def decide_review(self, alert_id: str, status: str, by: str) -> HeldReview | None:
        """Move a held action out of review; None if it is unknown or already decided."""
        row = await self.conn.fetchrow(
            "UPDATE reviews v SET status = $2, decided_by = $3, decided_at = now()"
            " FROM runs r WHERE v.alert_id = $1 AND v.status = 'in_review'"
            " AND r.run_id = v.run_id"
            " RETURNING v.run_id, v.step_id, v.account_id, v.flow_id, v.step, v.request,"
            " r.profile_id, r.headers",
            alert_id,
            status,
            by,
        )
        if row is None:
            return None
        return HeldReview(
            alert_id,
            row["run_id"],
            row["step_id"],
            row["account_id"],
            row["flow_id"],
            row["profile_id"],
            row["step"],
            row["request"],
            row["headers"],
        )

    async def set_execution(
        self, run_id: UUID, step_id: str, outcome: str, reason: str | None
    ) -> None:
        """Change a step's recorded outcome (a held action decided)."""
        await self.conn.execute(
            "UPDATE step_executions SET outcome = $3, reason = $4, at = now()"
            " WHERE run_id = $1 AND step_id = $2",
            run_id,
            step_id,
            outcome,
            reason,
        )

    # --- the read model: profiles, consent, suppressions (F3, F7) ---------------------

    async def upsert_profiles(self, rows: Sequence[Observed]) -> None:
        """Merge profile data (a dict or its JSON text) by its time: newer fields given
        replace older ones, custom properties are merged key by key; data older than
        what is stored only fills what is not known yet (a consent change that names no
        first name must not leave a profile without the one an earlier event gave).

        A row is written only when the merge changes it or the data is newer than the
        stored time (which later merges are ordered by): most events repeat the profile
        as stored, and then cost a lookup, not a row.

        The rows go as one JSON array (`_profile_rows`), not as four `unnest` arrays:
        asyncpg checks each element of an array argument in Python (ABC instance
        checks, `shared.db.batches`), which cost more than the statement's own encoding,
        and every event has a row here."""
        for batch in rounds(rows, _by_profile):
            await self.conn.execute(
                # The join drops rows the merge would leave as they are without locking
                # them; the update's own condition decides again on the locked row.
                "WITH u AS (SELECT e ->> 0 AS a, e ->> 1 AS p, e -> 2 AS j,"
                " (e ->> 3)::timestamptz AS t FROM jsonb_array_elements($1::text::jsonb) e),"
                " changed AS (SELECT u.* FROM u LEFT JOIN profiles"
                " ON profiles.account_id = u.a AND profiles.profile_id = u.p"
                " WHERE profiles.profile_id IS NULL OR NOT (profiles.seen_at >= u.t"
                # The same data again, not newer: nothing to merge (the common case,
                # decided without computing the merge).
                " AND profiles.profile = u.j)"
                f" AND {_CHANGES.format(new='u.j', at='u.t')})"
                " INSERT INTO profiles (account_id, profile_id, profile, seen_at)"
                " SELECT a, p, j, t FROM changed"
                " ON CONFLICT (account_id, profile_id) DO UPDATE"
                f" SET profile = {_MERGED_PROFILE.format(new=_NEW, at=_AT)},"
                " seen_at = greatest(profiles.seen_at, EXCLUDED.seen_at)"
                f" WHERE {_CHANGES.format(new=_NEW, at=_AT)}",
                _profile_rows(batch),
            )

    async def walk_state(self, keys: Iterable[ProfileKey]) -> dict[ProfileKey, ProfileState]:
        """(consent state, suppressions, newest profile) per (account, profile)."""
        keys = list(set(keys))
        if not keys:
            return {}
        rows = await self.conn.fetch(
            "SELECT k.a, k.p, r.consent, r.suppressions, r.receipts, pr.profile,"
            " (SELECT array_agg(s.channel ORDER BY s.channel) FROM sent_messages s"
            "  WHERE s.account_id = k.a AND s.profile_id = k.p) AS channels,"
            " (SELECT array_agg(s.sent_at ORDER BY s.channel) FROM sent_messages s"
            "  WHERE s.account_id = k.a AND s.profile_id = k.p) AS sent"
            " FROM unnest($1::text[], $2::text[]) k(a, p)"
            " LEFT JOIN reachability r ON r.account_id = k.a AND r.profile_id = k.p"
            " LEFT JOIN profiles pr ON pr.account_id = k.a AND pr.profile_id = k.p",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {
            (r["a"], r["p"]): ProfileState(
                r["consent"],
                r["suppressions"] or [],
                r["profile"],
                last_sent=dict(zip(r["channels"] or [], r["sent"] or [], strict=True)),
                receipts=receipts_in_force(r["receipts"]),
            )
            for r in rows
        }

    async def save_consent(self, rows: Sequence[Observed]) -> None:
        """Keep the newest consent state per profile (an older change arriving late is
        ignored)."""
        for batch in rounds(rows, _by_profile):
            await self.conn.execute(
                "INSERT INTO reachability (account_id, profile_id, consent, consent_at)"
                " SELECT a, p, j::jsonb, t FROM unnest($1::text[], $2::text[], $3::text[],"
                " $4::timestamptz[]) AS u(a, p, j, t)"
                " ON CONFLICT (account_id, profile_id) DO UPDATE"
                " SET consent = EXCLUDED.consent, consent_at = EXCLUDED.consent_at,"
                " updated_at = now() WHERE reachability.consent_at IS NULL"
                " OR reachability.consent_at <= EXCLUDED.consent_at",
                *_fact_columns(batch),
            )

    async def save_receipts(self, rows: Sequence[Observed]) -> None:
        """C17: per profile and slot, the receipt of the newest change (a slot's entry
        is replaced by a change at least as new; other slots are kept)."""
        for batch in rounds(rows, _by_profile):
            await self.conn.execute(
                "INSERT INTO reachability AS r (account_id, profile_id, receipts)"
                " SELECT a, p, (SELECT coalesce(jsonb_object_agg(e.key,"
                "  jsonb_build_object('receipt_id', e.value, 'at', t)), '{}'::jsonb)"
                "  FROM jsonb_each(j::jsonb) e)"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
                " AS u(a, p, j, t)"
                " ON CONFLICT (account_id, profile_id) DO UPDATE"
                " SET receipts = r.receipts || (SELECT coalesce(jsonb_object_agg(n.key,"
                "  n.value), '{}'::jsonb) FROM jsonb_each(EXCLUDED.receipts) n"
                "  WHERE NOT r.receipts ? n.key"
                "  OR (r.receipts -> n.key ->> 'at')::timestamptz"
                "   <= (n.value ->> 'at')::timestamptz),"
                " updated_at = now()",
                *_fact_columns(batch),
            )

    async def save_suppressions(self, rows: Sequence[Observed]) -> None:
        """Keep the newest list of suppressions in force per profile."""
        for batch in rounds(rows, _by_profile):
            await self.conn.execute(
                "INSERT INTO reachability (account_id, profile_id, suppressions,"
                " suppressions_at)"
                " SELECT a, p, j::jsonb, t FROM unnest($1::text[], $2::text[], $3::text[],"
                " $4::timestamptz[]) AS u(a, p, j, t)"
                " ON CONFLICT (account_id, profile_id) DO UPDATE"
                " SET suppressions = EXCLUDED.suppressions,"
                " suppressions_at = EXCLUDED.suppressions_at, updated_at = now()"
                " WHERE reachability.suppressions_at IS NULL"
                " OR reachability.suppressions_at <= EXCLUDED.suppressions_at",
                *_fact_columns(batch),
            )

    # --- F8, F9: sending settings and what was sent -------------------------------------

    async def sending_settings(self, accounts: Iterable[str]) -> dict[str, SendingSettings]:
        """The saved sending settings of `accounts` (absent: the defaults)."""
        rows = await self.conn.fetch(
            "SELECT account_id, window_start, window_end, timezone, email_quiet_hours"
            " FROM sending_settings WHERE account_id = ANY($1::text[])",
            list(set(accounts)),
        )
        return {
            r["account_id"]: SendingSettings(
                r["window_start"], r["window_end"], r["timezone"], r["email_quiet_hours"]
            )
            for r in rows
        }

    async def save_sending_settings(self, account_id: str, settings: SendingSettings) -> None:
        """Replace an account's sending settings."""
        await self.conn.execute(
            "INSERT INTO sending_settings (account_id, window_start, window_end, timezone,"
            " email_quiet_hours) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (account_id) DO UPDATE SET window_start = EXCLUDED.window_start,"
            " window_end = EXCLUDED.window_end, timezone = EXCLUDED.timezone,"
            " email_quiet_hours = EXCLUDED.email_quiet_hours, updated_at = now()",
            account_id,
            settings.window_start,
            settings.window_end,
            settings.timezone,
            settings.email_quiet_hours,
        )

    async def lock_sending(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """F9: a transaction-level advisory lock per (account, profile, channel), taken
        in one global order (two batches that lock only these cannot deadlock)."""
        await lock_all(self.conn, (("sent", *k) for k in keys))

    async def note_sent(self, rows: Sequence[Sent]) -> None:
        """Keep the newest message sent per (account, profile, channel), in key order."""
        newest = _newest_by_key(((r.account_id, r.profile_id, r.channel), r.at) for r in rows)
        if not newest:
            return
        await self.conn.execute(
            "INSERT INTO sent_messages (account_id, profile_id, channel, sent_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
            " ON CONFLICT (account_id, profile_id, channel) DO UPDATE"
            " SET sent_at = greatest(sent_messages.sent_at, EXCLUDED.sent_at)",
            *columns([(*k, at) for k, at in newest], 4),
        )

    # --- P2: erased subjects ------------------------------------------------------------

    async def hold_erased(self, account_id: str, subjects: Sequence[str], at: datetime) -> None:
        """Remember erased subjects; an erase of one again moves its time forward, so a
        subscribe that arrived between the two erases lifts nothing."""
        subjects = sorted(set(subjects))
        if not subjects:
            return
        await self.conn.execute(
            "INSERT INTO erased_subjects (account_id, subject, erased_at)"
            " SELECT $1, unnest($2::text[]), $3"
            " ON CONFLICT (account_id, subject) DO UPDATE"
            " SET erased_at = greatest(erased_subjects.erased_at, EXCLUDED.erased_at)",
            account_id,
            subjects,
            at,
        )

    async def erasure_holds(self, queries: Sequence[SubjectQuery]) -> dict[ProfileKey, ErasureHold]:
        """The newest erase each profile's subjects match, with its resubscriptions."""
        pairs = {(q.account_id, q.profile_id, s) for q in queries for s in q.subjects}
        if not pairs:
            return {}
        a, p, subj = columns(sorted(pairs), 3)
        rows = await self.conn.fetch(
            "SELECT k.a, k.p, max(e.erased_at) AS erased_at,"
            " (SELECT coalesce(jsonb_object_agg(r.family, r.arrived_at), '{}'::jsonb)"
            "  FROM resubscriptions r WHERE r.account_id = k.a AND r.profile_id = k.p)"
            "  AS again"
            " FROM unnest($1::text[], $2::text[], $3::text[]) k(a, p, s)"
            " JOIN erased_subjects e ON e.account_id = k.a AND e.subject = k.s"
            " GROUP BY k.a, k.p",
            a,
            p,
            subj,
        )
        return {
            (r["a"], r["p"]): ErasureHold(
                r["erased_at"],
                {f: datetime.fromisoformat(t) for f, t in (r["again"] or {}).items()},
            )
            for r in rows
        }

    async def note_resubscribed(self, rows: Sequence[Resubscribed]) -> None:
        """Keep the newest arrival of a subscribe per profile and channel family."""
        newest = _newest_by_key(((r.account_id, r.profile_id, r.family), r.at) for r in rows)
        if not newest:
            return
        await self.conn.execute(
            "INSERT INTO resubscriptions (account_id, profile_id, family, arrived_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
            " ON CONFLICT (account_id, profile_id, family) DO UPDATE"
            " SET arrived_at = greatest(resubscriptions.arrived_at, EXCLUDED.arrived_at)",
            *columns([(*k, at) for k, at in newest], 4),
        )


def _newest_by_key(
    rows: Iterable[tuple[tuple[str, str, str], datetime]],
) -> list[tuple[tuple[str, str, str], datetime]]:
    """The newest time per key, in key order (the order rows are locked in)."""
    newest: dict[tuple[str, str, str], datetime] = {}
    for key, at in rows:
        newest[key] = max(at, newest.get(key, at))
    return sorted(newest.items())
