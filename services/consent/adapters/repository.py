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
from pydantic_core import to_json

from services.consent.adapters import privacy
from services.consent.domain.model import Act, ProfileConsent, iso
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
from shared.db.locks import lock_key
from shared.db.pool import JsonText
from shared.db.uow import UnitOfWork
from shared.domain.identity import email_identity
from shared.pages import accounts as page_accounts
from shared.pages.accounts import PageSettings

CONFIRMATION_COLUMNS = (
    "confirmation_id, account_id, profile_id, channel, list_id, scope, method, email,"
    " requested_at, confirmed_at, evidence, notice, jurisdiction"
)
_STATE_ROWS = (
    "json_to_recordset($1::text::json) AS u(a text, p text, state jsonb, profile jsonb,"
    " email text, phone text, status text, at timestamptz, method text, key text,"
    " seq integer, hash text)"
)
"""The consent rows `save_states` writes, sent as one JSON document (encoded in one
call, by pydantic's JSON writer, where array parameters are checked element by element in
Python)."""
_STATE_COLUMNS = (
    "account_id, profile_id, state, profile, email, phone_number, email_status,"
    " email_consented_at, email_method, email_key, receipt_sequence, receipt_hash"
)
_STATE_VALUES = (
    "SELECT u.a, u.p, u.state, u.profile, u.email, u.phone, u.status, u.at, u.method, u.key,"
    f" u.seq, u.hash FROM {_STATE_ROWS} ORDER BY u.a, u.p"
)
UPDATE_STATES = (
    "UPDATE consent_state s SET state = u.state, profile = u.profile, email = u.email,"
    " phone_number = u.phone, email_status = u.status, email_consented_at = u.at,"
    " email_method = u.method, email_key = u.key,"
    " receipt_sequence = coalesce(u.seq, s.receipt_sequence),"
    " receipt_hash = coalesce(u.hash, s.receipt_hash), updated_at = now()"
    f" FROM {_STATE_ROWS} WHERE s.account_id = u.a AND s.profile_id = u.p"
)
STATE_COLUMNS = tuple(c.strip() for c in _STATE_COLUMNS.split(","))
"""The columns of a consent row as `_state_record` gives them, for binary COPY."""
UPSERT_STATES = (
    f"INSERT INTO consent_state AS s ({_STATE_COLUMNS}) {_STATE_VALUES}"
    " ON CONFLICT (account_id, profile_id) DO UPDATE SET state = EXCLUDED.state,"
    " profile = EXCLUDED.profile, email = EXCLUDED.email,"
    " phone_number = EXCLUDED.phone_number, email_status = EXCLUDED.email_status,"
    " email_consented_at = EXCLUDED.email_consented_at,"
    " email_method = EXCLUDED.email_method, email_key = EXCLUDED.email_key,"
    " receipt_sequence = coalesce(EXCLUDED.receipt_sequence, s.receipt_sequence),"
    " receipt_hash = coalesce(EXCLUDED.receipt_hash, s.receipt_hash), updated_at = now()"
)


def _state_record(key: Key, stored: Stored, head: Head | None) -> tuple[Any, ...]:
    """One consent row in the order of `STATE_COLUMNS`: the state, the profile, the
    columns the read side filters on (C14, I1) and the end of the receipt chain (C16)."""
    state, profile = stored.state, stored.profile
    email = state.slot("email")
    return (
        key[0],
        key[1],
        state.to_json(),
        profile,
        profile.get("email"),
        state.phone_number,
        email.status,
        email.consented_at,
        email.method,
        email_identity(profile.get("email")),
        head.sequence if head and head.hash else None,
        head.hash if head else None,
    )


_STATE_ROW_KEYS = ("a", "p", "state", "profile", "email", "phone", "status", "at", "method",
                   "key", "seq", "hash")  # fmt: skip


def _state_row(record: tuple[Any, ...]) -> dict[str, Any]:
    """A `_state_record` as `_STATE_ROWS` reads it (its time as ISO text, JSON's)."""
    row = dict(zip(_STATE_ROW_KEYS, record, strict=True))
    if row["at"] is not None:
        row["at"] = iso(row["at"])
    return row


def _json_text(value: Any) -> str:
    """`value` as JSON text for a `$n::text::json` parameter. Non-finite numbers are
    written as `NaN`/`Infinity`, as `json.dumps` wrote them (PostgreSQL refuses them)."""
    return to_json(value).decode()


RECEIPT_COLUMNS = (
    "account_id", "profile_id", "sequence", "receipt_id", "hash", "personal", "receipt",
)  # fmt: skip


def _receipt_row(r: Receipt) -> tuple[Any, ...]:
    """C15: one receipt in the order of `RECEIPT_COLUMNS`, for binary COPY, with the
    body's canonical bytes (the ones hashed) passed as they are (`JsonText`): a body is
    encoded once."""
    body = r.canonical if r.canonical is not None else to_json(r.body)
    return (
        r.account_id,
        r.profile_id,
        r.sequence,
        r.receipt_id,
        r.hash,
        JsonText(to_json(r.personal)) if r.personal else None,
        JsonText(body),
    )


_UNTOUCHED = ProfileConsent()
"""The state of a profile without a row (frozen, and its empty act log is never changed
in place: one serves every new profile)."""


class PostgresConsentRepository:
    """`ConsentRepository` on the unit of work's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        # The rows `lock_states` locked in this transaction: whether each existed, as
        # loaded (and changed by the use case since), and each chain's end (C16).
        self._loaded: dict[Key, bool] = {}
        self._stored: dict[Key, Stored] = {}
        self._heads: dict[Key, Head] = {}

    @property
    def conn(self) -> asyncpg.Connection:
        return self._uow.conn

    async def lock_states(self, keys: Iterable[Key]) -> dict[Key, Stored]:
        """Lock every existing row of `keys` (in key order, so concurrent batches and link
        clicks cannot deadlock) for the rest of the transaction; a missing profile is
        given empty and created by `save_states` (a row another transaction creates in
        between is caught there). No row is written to take the locks."""
        ordered = sorted(set(keys) - self._loaded.keys())
        out = {k: self._stored[k] for k in set(keys) if k in self._stored}
        if not ordered:
            return out
        rows = await self.conn.fetch(
            "SELECT s.account_id, s.profile_id, s.state, s.profile, s.receipt_sequence,"
            " s.receipt_hash FROM consent_state s"
            " JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
            " ON s.account_id = k.a AND s.profile_id = k.p"
            " ORDER BY s.account_id, s.profile_id FOR UPDATE OF s",
            [k[0] for k in ordered],
            [k[1] for k in ordered],
        )
        found = {}
        for r in rows:
            key = Key(r["account_id"], r["profile_id"])
            found[key] = Stored(ProfileConsent.from_json(r["state"]), dict(r["profile"] or {}))
            self._heads[key] = Head(r["receipt_sequence"] or 0, r["receipt_hash"])
        for key in ordered:
            stored = found.get(key) or Stored(_UNTOUCHED, {})
            self._loaded[key] = key in found
            self._stored[key] = out[key] = stored
        return out

    async def save_states(self, states: Mapping[Key, Stored]) -> None:
        """Write back rows loaded with `lock_states`, with the end of each profile's
        receipt chain (C16): the rows that existed are updated, the others created. A
        row that another transaction created since `lock_states` saw none would be
        overwritten blind, so the transaction is rolled back instead, to be retried."""
        existing: list[tuple[Any, ...]] = []
        created: list[tuple[Any, ...]] = []
        upserted: list[tuple[Any, ...]] = []  # rows not loaded here: as they come
        for key in sorted(states):
            loaded = self._loaded.get(key)
            row = _state_record(key, states[key], self._heads.get(key))
            (upserted if loaded is None else existing if loaded else created).append(row)
        if existing:
            await self.conn.execute(UPDATE_STATES, _json_text(list(map(_state_row, existing))))
        if created:
            # New rows by binary COPY, in key order: PostgreSQL takes them as they are,
            # where the JSON document of the other two statements is parsed and
            # unpacked first (half of consent's database time per new profile).
            try:
                await copy_rows(self.conn, "consent_state", STATE_COLUMNS, created)
            except asyncpg.exceptions.UniqueViolationError as exc:
                raise asyncpg.exceptions.SerializationError(
                    "a consent row was created concurrently; the batch is retried"
                ) from exc
            for row in created:
                self._loaded[Key(row[0], row[1])] = True
        if upserted:
            await self.conn.execute(UPSERT_STATES, _json_text(list(map(_state_row, upserted))))

    async def recorded_acts(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """X2: which (account, act id) pairs the audit trail already holds."""
        wanted = sorted(set(pairs))
        if not wanted:
            return set()
        rows = await self.conn.fetch(
            "SELECT DISTINCT h.account_id, h.act_id FROM consent_history h"
            " JOIN unnest($1::text[], $2::text[]) AS k(a, i)"
            " ON h.account_id = k.a AND h.act_id = k.i",
            [p[0] for p in wanted],
            [p[1] for p in wanted],
        )
        return {(r["account_id"], r["act_id"]) for r in rows}

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
        keys = sorted({lock_key("identity", a, i) for a, i in pairs})
        if keys:
            # One row back for the batch (`shared.db.locks.lock_all` returns one per key).
            await self.conn.fetchval(
                "SELECT count(pg_advisory_xact_lock(t.k)) FROM (SELECT k FROM"
                " unnest($1::bigint[]) WITH ORDINALITY AS u(k, n) ORDER BY n) AS t",
                keys,
            )

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
        """C16: each chain's end: on the profile's consent row when `lock_states` loaded
        it, or in the table of heads (a profile whose row is gone, or a head written
        before the rows kept one); the one with the higher sequence."""
        wanted = set(keys)
        out = {k: h for k in wanted if (h := self._heads.get(k)) is not None and h.hash}
        rest = sorted(k for k in wanted if not self._loaded.get(k))
        if rest:
            rows = await self.conn.fetch(
                "SELECT h.account_id, h.profile_id, h.sequence, h.hash"
                " FROM consent_receipt_heads h JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
                " ON h.account_id = k.a AND h.profile_id = k.p",
                [k[0] for k in rest],
                [k[1] for k in rest],
            )
            for r in rows:
                key = Key(r["account_id"], r["profile_id"])
                if key not in out or out[key].sequence < r["sequence"]:
                    out[key] = Head(r["sequence"], r["hash"])
        # The older heads of rows loaded here are in the table until overwritten.
        return out

    async def append_receipts(self, receipts: Sequence[Receipt]) -> None:
        """C15, C16: the receipts by COPY, in order; each chain's new end goes on the profile's
        consent row with its state (`save_states`, after this) when `lock_states`
        loaded it, else into the table of heads."""
        if not receipts:
            return
        await copy_rows(
            self.conn, "consent_receipts", RECEIPT_COLUMNS, [_receipt_row(r) for r in receipts]
        )
        heads = {}
        for r in receipts:
            key = Key(r.account_id, r.profile_id)
            if key in self._loaded:
                self._heads[key] = Head(r.sequence, r.hash)
            else:
                heads[key] = (r.sequence, r.hash)
        if not heads:
            return
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
    # The end kept on the consent row or in the table of heads, the higher sequence.
    head = await conn.fetchrow(
        "SELECT sequence, hash FROM (SELECT receipt_sequence AS sequence,"
        " receipt_hash AS hash FROM consent_state WHERE account_id = $1 AND profile_id = $2"
        " AND receipt_hash IS NOT NULL UNION ALL SELECT sequence, hash"
        " FROM consent_receipt_heads WHERE account_id = $1 AND profile_id = $2) h"
        " ORDER BY sequence DESC LIMIT 1",
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
        " UNION SELECT profile_id FROM consent_state WHERE account_id = $1"
        " AND receipt_hash IS NOT NULL"
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
