"""The consent service's SQL for its use cases: states locked per batch, history,
confirmations, settings and the suppression read model, as `ConsentRepository`
(`services/consent/ports.py`). Set-based: one statement per batch where it can be.
Read-side queries of the HTTP API are in `queries.py`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple
from typing import Any

import asyncpg

from services.consent.adapters import privacy
from services.consent.domain.model import Act, ProfileConsent
from services.consent.domain.receipts import Head, HistoryLink, Receipt
from services.consent.ports import (
    SETTING_FIELDS,
    AccountSettings,
    Chain,
    Confirmation,
    HistoryRow,
    IdentityAct,
    Key,
    KnownProfile,
    Stored,
    SuppressionList,
)
from shared.db.batches import columns, copy_rows
from shared.db.locks import lock_all
from shared.db.uow import UnitOfWork
from shared.domain.identity import email_identity
from shared.pages import accounts as page_accounts
from shared.pages.accounts import PageSettings

CONFIRMATION_COLUMNS = (
    "confirmation_id, account_id, profile_id, channel, list_id, scope, method, email,"
    " requested_at, confirmed_at, evidence, notice, jurisdiction"
)
RECEIPT_COLUMNS = (
    "account_id", "profile_id", "sequence", "receipt_id", "receipt", "hash", "personal",
)  # fmt: skip


class PostgresConsentRepository:
    """`ConsentRepository` on the unit of work's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    @property
    def conn(self) -> asyncpg.Connection:
        return self._uow.conn

    async def lock_states(self, keys: Iterable[Key]) -> dict[Key, Stored]:
        """Create missing rows and lock every row of `keys` (in key order, so concurrent
        batches and link clicks cannot deadlock) for the rest of the transaction."""
        ordered = sorted(set(keys))
        if not ordered:
            return {}
        accounts, profiles = [k[0] for k in ordered], [k[1] for k in ordered]
        await self.conn.execute(
            "INSERT INTO consent_state (account_id, profile_id)"
            " SELECT a, p FROM unnest($1::text[], $2::text[]) AS k(a, p) ORDER BY a, p"
            " ON CONFLICT DO NOTHING",
            accounts,
            profiles,
        )
        rows = await self.conn.fetch(
            "SELECT s.account_id, s.profile_id, s.state, s.profile FROM consent_state s"
            " JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
            " ON s.account_id = k.a AND s.profile_id = k.p"
            " ORDER BY s.account_id, s.profile_id FOR UPDATE OF s",
            accounts,
            profiles,
        )
        return {
            Key(r["account_id"], r["profile_id"]): Stored(
                ProfileConsent.from_json(r["state"]), dict(r["profile"] or {})
            )
            for r in rows
        }

    async def save_states(self, states: Mapping[Key, Stored]) -> None:
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
                    email_identity(stored.profile.get("email")),
                )
            )
        await self.conn.execute(
            "UPDATE consent_state s SET state = u.state::jsonb, profile = u.profile::jsonb,"
            " email = u.email, phone_number = u.phone, email_status = u.status,"
            " email_consented_at = u.consented_at, email_method = u.method,"
            " email_key = u.email_key, updated_at = now()"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::text[])"
            " AS u(a, p, state, profile, email, phone, status, consented_at, method, email_key)"
            " WHERE s.account_id = u.a AND s.profile_id = u.p",
            *columns(rows, 10),
        )

    async def append_history(self, rows: Sequence[HistoryRow]) -> None:
        if not rows:
            return
        await copy_rows(
            self.conn,
            "consent_history",
            HISTORY_COLUMNS,
            [_history_columns(row) for row in rows],
        )

    async def account_settings(self, accounts: Iterable[str]) -> dict[str, AccountSettings]:
        rows = await self.conn.fetch(
            "SELECT account_id, " + ", ".join(SETTING_FIELDS) + " FROM account_settings"
            " WHERE account_id = ANY($1::text[])",
            list(set(accounts)),
        )
        return {r["account_id"]: AccountSettings(**{f: r[f] for f in SETTING_FIELDS}) for r in rows}

    async def save_account_settings(self, account_id: str, values: Mapping[str, Any]) -> None:
        cols = [f for f in SETTING_FIELDS if f in values]
        if not cols:
            return
        await self.conn.execute(
            f"INSERT INTO account_settings (account_id, {', '.join(cols)}) VALUES ($1, "
            + ", ".join(f"${i + 2}" for i in range(len(cols)))
            + ") ON CONFLICT (account_id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
            + ", updated_at = now()",
            account_id,
            *(values[c] for c in cols),
        )

    async def page_settings(self, accounts: Iterable[str]) -> dict[str, PageSettings]:
        return await page_accounts.load_many(self.conn, list(accounts))

    async def save_page_settings(self, account_id: str, values: Mapping[str, Any]) -> None:
        await page_accounts.save(self.conn, account_id, dict(values))

    async def suppressions(self, keys: Iterable[Key]) -> dict[Key, list[dict[str, Any]]]:
        wanted = list(set(keys))
        if not wanted:
            return {}
        rows = await self.conn.fetch(
            "SELECT v.account_id, v.profile_id, v.suppressions FROM suppression_view v"
            " JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
            " ON v.account_id = k.a AND v.profile_id = k.p",
            [k[0] for k in wanted],
            [k[1] for k in wanted],
        )
        return {Key(r["account_id"], r["profile_id"]): list(r["suppressions"]) for r in rows}

    async def save_suppressions(self, lists: Sequence[SuppressionList]) -> None:
        """Keep the newest suppression list per profile (an older change arriving late is
        ignored)."""
        if lists:
            await self.conn.executemany(
                "INSERT INTO suppression_view (account_id, profile_id, suppressions, changed_at)"
                " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (account_id, profile_id) DO UPDATE"
                " SET suppressions = EXCLUDED.suppressions, changed_at = EXCLUDED.changed_at"
                " WHERE suppression_view.changed_at <= EXCLUDED.changed_at",
                [(s.account_id, s.profile_id, s.suppressions, s.changed_at) for s in lists],
            )

    async def remember_profiles(self, profiles: Sequence[KnownProfile]) -> None:
        """Keep the attributes of profiles heard of through other topics (read side)."""
        if profiles:
            await self.conn.executemany(
                "INSERT INTO consent_state (account_id, profile_id, profile, email, email_key)"
                " VALUES ($1, $2, $3::jsonb, $3::jsonb->>'email', $4)"
                " ON CONFLICT (account_id, profile_id) DO UPDATE SET"
                " profile = consent_state.profile || jsonb_strip_nulls(EXCLUDED.profile),"
                " email = coalesce(EXCLUDED.email, consent_state.email),"
                " email_key = coalesce(EXCLUDED.email_key, consent_state.email_key)",
                # lock order as in lock_states
                [
                    (p.account_id, p.profile_id, p.profile, email_identity(p.profile.get("email")))
                    for p in sorted(profiles, key=lambda p: (p.account_id, p.profile_id))
                ],
            )

    async def lock_identities(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Transaction-level advisory locks, taken in one global order (no deadlock
        between two batches that lock identities only)."""
        await lock_all(self.conn, (("identity", a, i) for a, i in pairs))

    async def identity_acts(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Act]]:
        """I1, C6: the acts kept for each (account, identity), oldest first."""
        wanted = list(set(pairs))
        if not wanted:
            return {}
        rows = await self.conn.fetch(
            "SELECT n.account_id, n.identity, n.act::text AS act FROM identity_acts n"
            " JOIN unnest($1::text[], $2::text[]) AS k(a, i)"
            " ON n.account_id = k.a AND n.identity = k.i",
            [p[0] for p in wanted],
            [p[1] for p in wanted],
        )
        out: dict[tuple[str, str], list[Act]] = {}
        for r in rows:
            out.setdefault((r["account_id"], r["identity"]), []).append(
                Act.from_json(json.loads(r["act"]))
            )
        return {k: sorted(v, key=lambda a: a.version) for k, v in out.items()}

    async def add_identity_acts(self, rows: Sequence[IdentityAct]) -> None:
        """I1, C6: keep acts for addresses and numbers, once each."""
        if rows:
            await self.conn.executemany(
                "INSERT INTO identity_acts (account_id, identity, act_id, act)"
                " VALUES ($1, $2, $3, $4::text::jsonb) ON CONFLICT DO NOTHING",
                [
                    (r.account_id, r.identity, r.act.act_id, json.dumps(r.act.to_json()))
                    for r in rows
                ],
            )

    async def profiles_by_identity(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[str]]:
        """Profiles carrying each (account, identity) now (I1, C6)."""
        wanted = list(set(pairs))
        if not wanted:
            return {}
        kinds = [i.partition(":") for _, i in wanted]
        rows = await self.conn.fetch(
            "SELECT k.a AS account_id, k.i AS identity, s.profile_id FROM consent_state s"
            " JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(a, i, kind, v)"
            " ON s.account_id = k.a AND ((k.kind = 'phone' AND (s.phone_number = k.v"
            " OR (s.phone_number IS NULL AND s.profile->>'phone_number' = k.v)))"
            " OR (k.kind = 'email' AND s.email_key = k.v)) ORDER BY s.profile_id",
            [p[0] for p in wanted],
            [p[1] for p in wanted],
            [k[0] for k in kinds],
            [k[2] for k in kinds],
        )
        out: dict[tuple[str, str], list[str]] = {}
        for r in rows:
            out.setdefault((r["account_id"], r["identity"]), []).append(r["profile_id"])
        return out

    async def profile_email(self, key: Key) -> str | None:
        return await self.conn.fetchval(
            "SELECT email FROM consent_state WHERE account_id = $1 AND profile_id = $2",
            key.account_id,
            key.profile_id,
        )

    async def add_confirmations(self, confirmations: Sequence[Confirmation]) -> set[str]:
        """Record pending confirmations; returns the ids that are new."""
        if not confirmations:
            return set()
        got = await self.conn.fetch(
            "INSERT INTO confirmations (confirmation_id, account_id, profile_id, channel,"
            " list_id, scope, method, email, email_key, evidence, notice, jurisdiction)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],"
            " $12::text[])"
            " ON CONFLICT DO NOTHING RETURNING confirmation_id",
            *columns(
                [
                    # the columns above; the database stamps the rest
                    (
                        *astuple(c)[:8],
                        email_identity(c.email),
                        c.evidence,
                        c.notice,
                        c.jurisdiction,
                    )
                    for c in confirmations
                ],
                12,
            ),
        )
        return {r["confirmation_id"] for r in got}

    async def confirmation(self, confirmation_id: str) -> Confirmation | None:
        return await find_confirmation(self.conn, confirmation_id)

    async def claim_confirmation(self, confirmation_id: str) -> bool:
        row = await self.conn.fetchrow(
            "UPDATE confirmations SET confirmed_at = now() WHERE confirmation_id = $1"
            " AND confirmed_at IS NULL RETURNING 1",
            confirmation_id,
        )
        return row is not None

    async def erased_hashes(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return await privacy.erased_hashes(self.conn, pairs)

    async def lift_erasure(self, pairs: Sequence[tuple[str, str]]) -> None:
        await privacy.lift_erasure(self.conn, pairs)

    async def receipt_heads(self, keys: Iterable[Key]) -> dict[Key, Head]:
        wanted = list(set(keys))
        if not wanted:
            return {}
        rows = await self.conn.fetch(
            "SELECT h.account_id, h.profile_id, h.sequence, h.hash FROM consent_receipt_heads h"
            " JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
            " ON h.account_id = k.a AND h.profile_id = k.p",
            [k[0] for k in wanted],
            [k[1] for k in wanted],
        )
        return {Key(r["account_id"], r["profile_id"]): Head(r["sequence"], r["hash"]) for r in rows}

    async def append_receipts(self, receipts: Sequence[Receipt]) -> None:
        if not receipts:
            return
        await copy_rows(
            self.conn,
            "consent_receipts",
            RECEIPT_COLUMNS,
            [
                (
                    r.account_id,
                    r.profile_id,
                    r.sequence,
                    r.receipt_id,
                    dict(r.body),
                    r.hash,
                    dict(r.personal) if r.personal else None,
                )
                for r in receipts
            ],
        )
        heads = {(r.account_id, r.profile_id): (r.sequence, r.hash) for r in receipts}
        ordered = sorted(heads)  # lock order as in lock_states
        await self.conn.execute(
            "INSERT INTO consent_receipt_heads (account_id, profile_id, sequence, hash)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[])"
            " ON CONFLICT (account_id, profile_id) DO UPDATE"
            " SET sequence = EXCLUDED.sequence, hash = EXCLUDED.hash",
            [k[0] for k in ordered],
            [k[1] for k in ordered],
            [heads[k][0] for k in ordered],
            [heads[k][1] for k in ordered],
        )

    async def receipt_chain(self, key: Key) -> Chain:
        return await receipt_chain(self.conn, key)

    async def receipt_profiles(self, account_id: str) -> list[str]:
        return await receipt_profiles(self.conn, account_id)


async def receipt_chain(conn: asyncpg.Connection, key: Key) -> Chain:
    """C16: a profile's receipts in stored order (by sequence, then as inserted), its
    head, and its history rows that name a receipt."""
    rows = await conn.fetch(
        "SELECT receipt, hash, personal FROM consent_receipts"
        " WHERE account_id = $1 AND profile_id = $2 ORDER BY sequence, id",
        key.account_id,
        key.profile_id,
    )
    head = await conn.fetchrow(
        "SELECT sequence, hash FROM consent_receipt_heads WHERE account_id = $1"
        " AND profile_id = $2",
        key.account_id,
        key.profile_id,
    )
    history = await conn.fetch(
        "SELECT receipt_id, slot, status, act_id FROM consent_history"
        " WHERE account_id = $1 AND profile_id = $2 AND receipt_id IS NOT NULL ORDER BY id",
        key.account_id,
        key.profile_id,
    )
    return Chain(
        [Receipt(*key, r["receipt"], r["hash"], r["personal"]) for r in rows],
        Head(head["sequence"], head["hash"]) if head else None,
        [HistoryLink(h["receipt_id"], h["slot"], h["status"], h["act_id"]) for h in history],
    )


async def receipt_profiles(conn: asyncpg.Connection, account_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT profile_id FROM consent_receipt_heads WHERE account_id = $1"
        " UNION SELECT DISTINCT profile_id FROM consent_receipts WHERE account_id = $1"
        " ORDER BY 1",
        account_id,
    )
    return [r["profile_id"] for r in rows]


async def find_confirmation(conn: asyncpg.Connection, confirmation_id: str) -> Confirmation | None:
    """One pending or used confirmation (C8), with when it was asked for."""
    row = await conn.fetchrow(
        f"SELECT {CONFIRMATION_COLUMNS} FROM confirmations WHERE confirmation_id = $1",
        confirmation_id,
    )
    return None if row is None else Confirmation(**dict(row))


HISTORY_COLUMNS = (
    "account_id", "profile_id", "slot", "action", "result", "status", "consented_at",
    "act_at", "method", "act_id", "list_id", "scope", "evidence", "phone_number", "actor",
    "claimed_at", "reason", "receipt_id",
)  # fmt: skip


def _history_columns(row: HistoryRow) -> tuple[Any, ...]:
    """A history row in the order of `HISTORY_COLUMNS` (COPY keeps the rows' order, so
    history ids follow the order in which acts were decided)."""
    h = row.entry
    return (
        row.account_id,
        row.profile_id,
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
        row.receipt_id,
    )
