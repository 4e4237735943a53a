"""The suppression service's SQL for its use cases, as the repositories of its unit of
work (`services/suppression/ports.py`): `SuppressionProfiles` (states locked per batch
and written back as a diff) and `SuppressionHistory`, on the batch's connection.
Read-side queries of the HTTP API are in `queries.py`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple

import asyncpg

from services.suppression.domain.rules import (
    Address,
    Suppression,
    SuppressionState,
    addresses,
    stored_spellings,
)
from services.suppression.ports import HistoryRow, Key, Stored


class PostgresSuppressionProfiles:
    """`SuppressionProfiles` on the transaction's connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lock(self, keys: Iterable[Key]) -> dict[Key, Stored]:
        """Create missing profile rows, lock them in key order, and load their suppressions."""
        ordered = sorted(set(keys))
        if not ordered:
            return {}
        accounts, profiles = [k[0] for k in ordered], [k[1] for k in ordered]
        await self.conn.execute(
            "INSERT INTO suppression_profiles (account_id, profile_id)"
            " SELECT a, p FROM unnest($1::text[], $2::text[]) AS k(a, p) ORDER BY a, p"
            " ON CONFLICT DO NOTHING",
            accounts,
            profiles,
        )
        rows = await self.conn.fetch(
            "SELECT s.account_id, s.profile_id, s.profile, s.soft_bounces, s.list_bounces"
            " FROM suppression_profiles s"
            " JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
            " ON s.account_id = k.a AND s.profile_id = k.p"
            " ORDER BY s.account_id, s.profile_id FOR UPDATE OF s",
            accounts,
            profiles,
        )
        sups = await self.conn.fetch(
            "SELECT s.account_id, s.profile_id, s.channel, s.reason, s.list_key, s.since"
            " FROM suppressions s JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
            " ON s.account_id = k.a AND s.profile_id = k.p ORDER BY s.since, s.reason",
            accounts,
            profiles,
        )
        by_key: dict[Key, list[Suppression]] = {}
        for r in sups:
            by_key.setdefault((r["account_id"], r["profile_id"]), []).append(
                Suppression(r["channel"], r["reason"], r["list_key"] or None, r["since"])
            )
        return {
            Key(r["account_id"], r["profile_id"]): Stored(
                SuppressionState(
                    tuple(by_key.get((r["account_id"], r["profile_id"]), ())),
                    r["soft_bounces"],
                    dict(r["list_bounces"] or {}),
                ),
                dict(r["profile"] or {}),
            )
            for r in rows
        }

    async def save(
        self,
        before: Mapping[Key, SuppressionState],
        after: Mapping[Key, Stored],
        sources: Mapping[Key, str],
    ) -> None:
        """Write the difference between `before` and `after`: removed and added rows,
        counters."""
        removed, added = [], []
        for key, stored in after.items():
            old = {s.key: s for s in before[key].suppressions}
            new = {s.key: s for s in stored.state.suppressions}
            removed += [(*key, c, r, lk or "") for (c, r, lk) in old.keys() - new.keys()]
            added += [
                (*key, s.channel, s.reason, s.list_id or "", s.since, sources.get(key))
                for k, s in new.items()
                if k not in old
            ]
        if removed:
            await self.conn.executemany(
                "DELETE FROM suppressions WHERE account_id = $1 AND profile_id = $2"
                " AND channel = $3 AND reason = $4 AND list_key = $5",
                removed,
            )
        if added:
            await self.conn.executemany(
                "INSERT INTO suppressions (account_id, profile_id, channel, reason, list_key,"
                " since, command_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                added,
            )
        if after:
            await self.conn.executemany(
                "UPDATE suppression_profiles SET profile = $3::jsonb, soft_bounces = $4,"
                " list_bounces = $5::jsonb, email_key = $6, phone_key = $7, updated_at = now()"
                " WHERE account_id = $1 AND profile_id = $2",
                [
                    (
                        *k,
                        s.profile,
                        s.state.soft_bounces,
                        dict(s.state.list_bounces),
                        *_keys(k.account_id, s.profile),
                    )
                    for k, s in after.items()
                ],
            )

    async def carriers(self, wanted: Iterable[Address]) -> dict[Address, set[Key]]:
        """Profiles whose stored key is any spelling of a wanted address (I1)."""
        spelled = {
            (a.account_id, a.channel, form): a for a in set(wanted) for form in stored_spellings(a)
        }
        if not spelled:
            return {}
        rows = await self.conn.fetch(
            "SELECT w.account_id, w.channel, w.form, s.profile_id"
            " FROM unnest($1::text[], $2::text[], $3::text[]) AS w(account_id, channel, form)"
            " JOIN suppression_profiles s ON s.account_id = w.account_id"
            " AND ((w.channel = 'email' AND s.email_key = w.form)"
            "   OR (w.channel = 'sms' AND s.phone_key = w.form))",
            *map(list, zip(*spelled, strict=True)),
        )
        out: dict[Address, set[Key]] = {}
        for r in rows:
            address = spelled[(r["account_id"], r["channel"], r["form"])]
            out.setdefault(address, set()).add(Key(r["account_id"], r["profile_id"]))
        return out

    async def with_liftable(self, keys: Sequence[Key]) -> set[Key]:
        """The profiles among `keys` holding an email suppression a consent event may lift
        (S5: spam complaints, global or of a list; C9: the global manual one)."""
        rows = await self.conn.fetch(
            "SELECT DISTINCT s.account_id, s.profile_id FROM suppressions s"
            " JOIN unnest($1::text[], $2::text[]) AS k(a, p)"
            " ON s.account_id = k.a AND s.profile_id = k.p"
            " WHERE s.channel = 'email'"
            " AND (s.reason = 'spam_complaint' OR (s.reason = 'manual' AND s.list_key = ''))",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {Key(r["account_id"], r["profile_id"]) for r in rows}


class PostgresSuppressionHistory:
    """`SuppressionHistory` on the transaction's connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def append(self, rows: Sequence[HistoryRow]) -> None:
        if rows:
            await self.conn.executemany(
                "INSERT INTO suppression_history (account_id, profile_id, change, channel, reason,"
                " list_id, source) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [astuple(r) for r in rows],
            )


def _keys(account_id: str, profile: Mapping[str, object]) -> tuple[str | None, str | None]:
    """(email key, phone key) of a profile, in the normal form (I1)."""
    found = {a.channel: a.key for a in addresses(account_id, profile)}
    return found.get("email"), found.get("sms")
