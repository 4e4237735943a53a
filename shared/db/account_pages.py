"""SQL of the `account_pages` table: an account's page settings (W1–W3) as plain column
values. `shared.pages.accounts` turns them into `PageSettings`; keeping the SQL here
leaves that module free of the database."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg


async def fetch(
    conn: asyncpg.Connection, accounts: Iterable[str], fields: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The stored `fields` of each account that has a row (others are left out)."""
    rows = await conn.fetch(
        "SELECT account_id, " + ", ".join(fields) + " FROM account_pages"
        " WHERE account_id = ANY($1::text[])",
        sorted(set(accounts)),
    )
    return {row["account_id"]: {f: row[f] for f in fields} for row in rows}


async def upsert(
    conn: asyncpg.Connection, account_id: str, values: Mapping[str, Any], fields: Sequence[str]
) -> None:
    """Set the given columns of an account's row (created when missing); columns not in
    `values` keep what they hold."""
    cols = [f for f in fields if f in values]
    if not cols:
        return
    await conn.execute(
        f"INSERT INTO account_pages (account_id, {', '.join(cols)}) VALUES ($1, "
        + ", ".join(f"${i + 2}" for i in range(len(cols)))
        + ") ON CONFLICT (account_id) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
        + ", updated_at = now()",
        account_id,
        *(values[c] for c in cols),
    )
