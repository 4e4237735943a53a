"""The consent service's SQL: states locked per batch, history, confirmations, settings and
the suppression read model. Set-based: one statement per batch where it can be."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.consent.domain.model import HistoryEntry, ProfileConsent
from shared.db.batches import columns

Key = tuple[str, str]  # (account_id, profile_id)


@dataclass
class Stored:
    """A profile's consent row as loaded for a unit of work."""

    state: ProfileConsent
    profile: dict[str, Any]


async def lock_states(conn: asyncpg.Connection, keys: Iterable[Key]) -> dict[Key, Stored]:
    """Create missing rows and lock every row of `keys` (in key order, so concurrent
    batches and link clicks cannot deadlock) for the rest of the transaction."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    accounts, profiles = [k[0] for k in ordered], [k[1] for k in ordered]
    await conn.execute(
        "INSERT INTO consent_state (account_id, profile_id)"
        " SELECT a, p FROM unnest($1::text[], $2::text[]) AS k(a, p) ORDER BY a, p"
        " ON CONFLICT DO NOTHING",
        accounts,
        profiles,
    )
    rows = await conn.fetch(
        "SELECT s.account_id, s.profile_id, s.state, s.profile FROM consent_state s"
        " JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
        " ON s.account_id = k.a AND s.profile_id = k.p"
        " ORDER BY s.account_id, s.profile_id FOR UPDATE OF s",
        accounts,
        profiles,
    )
    return {
        (r["account_id"], r["profile_id"]): Stored(
            ProfileConsent.from_json(r["state"]), dict(r["profile"] or {})
        )
        for r in rows
    }


async def save_states(conn: asyncpg.Connection, states: dict[Key, Stored]) -> None:
    if not states:
        return
    rows = []
    for (account, profile_id), stored in states.items():
        email = stored.state.slot("email")
        rows.append(
            (
                account,
                profile_id,
                json.dumps(stored.state.to_json()),
                json.dumps(stored.profile),
                stored.profile.get("email"),
                stored.state.phone_number,
                email.status,
                email.consented_at,
                email.method,
            )
        )
    await conn.execute(
        "UPDATE consent_state s SET state = u.state::jsonb, profile = u.profile::jsonb,"
        " email = u.email, phone_number = u.phone, email_status = u.status,"
        " email_consented_at = u.consented_at, email_method = u.method, updated_at = now()"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::text[], $8::timestamptz[], $9::text[])"
        " AS u(a, p, state, profile, email, phone, status, consented_at, method)"
        " WHERE s.account_id = u.a AND s.profile_id = u.p",
        *columns(rows, 9),
    )


async def append_history(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, HistoryEntry]]
) -> None:
    if not rows:
        return
    await conn.execute(
        "INSERT INTO consent_history (account_id, profile_id, slot, action, result, status,"
        " consented_at, act_at, method, act_id, list_id, scope, evidence, phone_number,"
        " actor, claimed_at, reason)"
        " SELECT a, p, sl, ac, r, st, ca, aa, m, ai, l, sc, e, ph, who, cl, why"
        " FROM unnest($1::text[],"
        " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],"
        " $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],"
        " $14::text[], $15::text[], $16::timestamptz[], $17::text[]) WITH ORDINALITY"
        " AS u(a, p, sl, ac, r, st, ca, aa, m, ai, l, sc, e, ph, who, cl, why, n) ORDER BY n",
        *columns(
            [
                (
                    a,
                    p,
                    h.slot,
                    h.action,
                    h.result,
                    h.status,
                    h.consented_at,
                    h.act_at,
                    h.method,
                    h.act_id,
                    h.list_id,
                    h.scope,
                    h.evidence,
                    h.phone_number,
                    h.actor,
                    h.claimed_at,
                    h.reason,
                )
                for a, p, h in rows
            ],
            17,
        ),
    )


@dataclass(frozen=True)
class AccountSettings:
    email_double_opt_in: bool | None = None
    from_email: str | None = None
    sms_reply_stop: str | None = None
    sms_reply_start: str | None = None
    sms_reply_help: str | None = None


SETTING_FIELDS = (
    "email_double_opt_in",
    "from_email",
    "sms_reply_stop",
    "sms_reply_start",
    "sms_reply_help",
)


async def account_settings(
    conn: asyncpg.Connection, accounts: Iterable[str]
) -> dict[str, AccountSettings]:
    rows = await conn.fetch(
        "SELECT account_id, " + ", ".join(SETTING_FIELDS) + " FROM account_settings"
        " WHERE account_id = ANY($1::text[])",
        list(set(accounts)),
    )
    return {r["account_id"]: AccountSettings(*(r[f] for f in SETTING_FIELDS)) for r in rows}


async def save_account_settings(
    conn: asyncpg.Connection, account: str, values: dict[str, Any]
) -> None:
    cols = [f for f in SETTING_FIELDS if f in values]
    if not cols:
        return
    await conn.execute(
        f"INSERT INTO account_settings (account_id, {', '.join(cols)}) VALUES ($1, "
        + ", ".join(f"${i + 2}" for i in range(len(cols)))
        + ") ON CONFLICT (account_id) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
        + ", updated_at = now()",
        account,
        *(values[c] for c in cols),
    )


async def suppressions(
    conn: asyncpg.Connection, keys: Iterable[Key]
) -> dict[Key, list[dict[str, Any]]]:
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT v.account_id, v.profile_id, v.suppressions FROM suppression_view v"
        " JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
        " ON v.account_id = k.a AND v.profile_id = k.p",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["account_id"], r["profile_id"]): list(r["suppressions"]) for r in rows}


async def save_suppressions(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, list[dict[str, Any]], datetime]]
) -> None:
    """Keep the newest suppression list per profile (an older change arriving late is ignored)."""
    if rows:
        await conn.executemany(
            "INSERT INTO suppression_view (account_id, profile_id, suppressions, changed_at)"
            " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (account_id, profile_id) DO UPDATE"
            " SET suppressions = EXCLUDED.suppressions, changed_at = EXCLUDED.changed_at"
            " WHERE suppression_view.changed_at <= EXCLUDED.changed_at",
            rows,
        )


async def add_confirmations(conn: asyncpg.Connection, rows: Sequence[tuple]) -> set[str]:
    """Record pending confirmations; returns the ids that are new (a redelivery adds none)."""
    if not rows:
        return set()
    got = await conn.fetch(
        "INSERT INTO confirmations (confirmation_id, account_id, profile_id, channel, list_id,"
        " scope, method, email)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::text[], $8::text[])"
        " ON CONFLICT DO NOTHING RETURNING confirmation_id",
        *columns(rows, 8),
    )
    return {r["confirmation_id"] for r in got}


async def confirmation(conn: asyncpg.Connection, confirmation_id: str) -> asyncpg.Record | None:
    """One pending or used confirmation (C8), with when it was asked for."""
    return await conn.fetchrow(
        "SELECT confirmation_id, account_id, profile_id, channel, list_id, scope, method,"
        " email, requested_at, confirmed_at FROM confirmations WHERE confirmation_id = $1",
        confirmation_id,
    )


async def claim_confirmation(conn: asyncpg.Connection, confirmation_id: str) -> bool:
    """Mark a confirmation used; False when it was used before (a repeated click)."""
    row = await conn.fetchrow(
        "UPDATE confirmations SET confirmed_at = now() WHERE confirmation_id = $1"
        " AND confirmed_at IS NULL RETURNING 1",
        confirmation_id,
    )
    return row is not None


async def profiles_by_phone(
    conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[str]]:
    """Profiles whose SMS consent belongs to each (account, phone number) (C6, C13)."""
    pairs = list(set(pairs))
    if not pairs:
        return {}
    rows = await conn.fetch(
        "SELECT s.account_id, s.phone_number, s.profile_id FROM consent_state s"
        " JOIN unnest($1::text[], $2::text[]) AS k(a, ph)"
        " ON s.account_id = k.a AND s.phone_number = k.ph ORDER BY s.profile_id",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    out: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        out.setdefault((r["account_id"], r["phone_number"]), []).append(r["profile_id"])
    return out


async def remember_profiles(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, dict[str, Any]]]
) -> None:
    """Keep the attributes of profiles heard of through other topics (for the read side)."""
    if rows:
        await conn.executemany(
            "INSERT INTO consent_state (account_id, profile_id, profile, email)"
            " VALUES ($1, $2, $3::jsonb, $3::jsonb->>'email')"
            " ON CONFLICT (account_id, profile_id) DO UPDATE SET"
            " profile = consent_state.profile || jsonb_strip_nulls(EXCLUDED.profile),"
            " email = coalesce(EXCLUDED.email, consent_state.email)",
            sorted(rows, key=lambda r: (r[0], r[1])),  # lock order as in lock_states
        )
