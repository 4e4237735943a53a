"""(f) the raw loop with consent's rows: a consent command's durable work on this
broker and this PostgreSQL, with none of the product's code in it.

The consent target (≥ 0.35 of (a)) sets a service that must store every act before it
publishes it against a loop that stores nothing. This loop stores what the issue's row
budget allows a consent act, as cheaply as we know how: it consumes a batch of the
commands (c) reads, parses each (pydantic-core's JSON, as the service does) and, in one
transaction per batch, reads the batch's consent rows (`FOR UPDATE`: any decision needs
them first) and writes four rows per command by binary COPY into consent's own tables,
made from its migrations in a schema of their own (state, history, receipt and outbox
row: the same columns and indexes); then it commits, produces one change per command
(keyed, its outbox row's bytes) and commits the offsets, as (a) does.

There is no decision, no canonical form or chain for the receipt, no identity across
profiles, no inbox and no outbox relay (the loop produces directly; its outbox rows are
never claimed or deleted), and its rows are narrower than the service's
(`row_widths`). Every shortcut favours the loop: what it reaches, and the cores its
processes need per command, bound what any consent service can do on these cores."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic_core import from_json, to_json

from bench.raw import timed_drain
from shared.db.migrations import migration_files

SCHEMA = "bench_floor"
TABLES = ("consent_state", "consent_history", "consent_receipts", "outbox")
STATE_COLUMNS = (
    "account_id", "profile_id", "state", "profile", "phone_number", "email_status",
    "receipt_sequence", "receipt_hash",
)  # fmt: skip
HISTORY_COLUMNS = (
    "account_id", "profile_id", "slot", "action", "result", "status", "consented_at",
    "act_at", "method", "act_id", "phone_number", "receipt_id",
)  # fmt: skip
RECEIPT_COLUMNS = ("account_id", "profile_id", "sequence", "receipt_id", "receipt", "hash")
OUTBOX_COLUMNS = ("topic", "key", "value", "headers")
COLUMNS = (STATE_COLUMNS, HISTORY_COLUMNS, RECEIPT_COLUMNS, OUTBOX_COLUMNS)


async def create_tables(dsn: str) -> None:
    """Consent's tables (and the shared outbox), from its own migrations, in `SCHEMA`,
    new and empty."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        await conn.execute(f"SET search_path TO {SCHEMA}")
        for _name, sql in migration_files("consent"):
            await conn.execute(sql)
    finally:
        await conn.close()


def rows_of(command: dict[str, Any], received: datetime) -> tuple[tuple[Any, ...], ...]:
    """The four rows of one command: its profile's state, the history row, the receipt
    and the outbox row of the change (its value the bytes the loop then produces)."""
    account, profile = command["account_id"], command["profile"]
    pid, phone = profile["id"], profile.get("phone_number")
    at = datetime.fromisoformat(command["consented_at"])
    act_id = command["command_id"]
    slot = {"status": "subscribed", "consented_at": command["consented_at"], "method": "form"}
    state = {
        "slots": {"sms": slot},
        "phone_number": phone,
        "log": [{"act": command, "received_at": received.isoformat()}],
    }
    receipt = {"receipt_id": act_id, "sequence": 1, "previous": None, "act": command}
    body = to_json(receipt)
    digest = hashlib.sha256(body).hexdigest()
    change = to_json({"profile_id": pid, "account_id": account, "state": state})
    return (
        (account, pid, to_json(state).decode(), to_json(profile).decode(), phone,
         "never_subscribed", 1, digest),
        (account, pid, "sms", "subscribe", "applied", "subscribed", at, at, "form", act_id,
         phone, act_id),
        (account, pid, 1, act_id, body.decode(), digest),
        ("consent-changes", pid.encode(), change, "{}"),
    )  # fmt: skip


async def _store(conn: asyncpg.Connection, commands: list[dict[str, Any]]) -> list[bytes]:
    """One batch's transaction: the lock-read, the four COPYs; returns the change values."""
    received = datetime.now(UTC)
    rows = [rows_of(c, received) for c in commands]
    async with conn.transaction():
        await conn.fetch(
            "SELECT s.state FROM consent_state s JOIN unnest($1::text[], $2::text[]) AS"
            " k(a, p) ON s.account_id = k.a AND s.profile_id = k.p FOR UPDATE OF s",
            [c["account_id"] for c in commands],
            [c["profile"]["id"] for c in commands],
        )
        for i, (table, columns) in enumerate(zip(TABLES, COLUMNS, strict=True)):
            await conn.copy_records_to_table(
                table, records=[r[i] for r in rows], columns=list(columns)
            )
    return [r[3][2] for r in rows]


async def connect(dsn: str) -> asyncpg.Connection:
    """The loop's connection, on new and empty tables. Opened before the phase's CPU is
    first read and closed after it is read last: a backend that exits in between takes
    its CPU time with it."""
    await create_tables(dsn)
    return await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})


async def durable_ceiling(
    bootstrap: str,
    conn: asyncpg.Connection,
    source: str,
    sink: str,
    count: int,
    batch: int,
    group_id: str | None = None,
) -> float:
    """Commands per second of the loop over `count` commands already on `source`, on
    `conn` (from `connect`), timed from its first fetched batch to the last commit, as
    (a) is; in a new consumer group unless one is named."""

    async def apply(
        consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, fetched: dict[Any, Any]
    ) -> int:
        records = [r for rs in fetched.values() for r in rs]
        values = await _store(conn, [from_json(r.value) for r in records])
        futures = [
            await producer.send(sink, v, key=r.key) for r, v in zip(records, values, strict=True)
        ]
        for f in futures:
            await f
        await consumer.commit()
        return len(records)

    return await timed_drain(bootstrap, source, count, batch, apply, group_id)


async def row_widths(dsn: str, schema: str) -> dict[str, float]:
    """The average stored width in bytes of a row of each of `TABLES` in `schema`
    (`pg_column_size` of the whole row), over the tables' rows."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        query = "SELECT coalesce(avg(pg_column_size(t.*)), 0) FROM {} t"
        return {t: float(await conn.fetchval(query.format(t))) for t in TABLES}
    finally:
        await conn.close()


def cores_needed(
    target_per_s: float, cpu_s_per_1000: dict[str, float], idle_s_per_s: dict[str, float]
) -> dict[str, Any]:
    """The cores the loop's processes together would keep busy at `target_per_s`, from
    their CPU per command in the phase (µs per process; the services, idle meanwhile,
    left out: their polling is not the loop's work)."""
    us = {
        name: v * 1000
        for name, v in cpu_s_per_1000.items()
        if name not in idle_s_per_s and v * 1000 >= 0.05
    }
    return {"us": us, "cores": sum(us.values()) * target_per_s / 1e6}
