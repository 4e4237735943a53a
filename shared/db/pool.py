"""asyncpg pools bound to one service's schema.

Each service owns one PostgreSQL schema (SPEC "Architecture"); its pool sets
`search_path` to that schema, so its SQL names tables without a prefix and cannot reach
another service's tables by accident.
"""

import json

import asyncpg
from pydantic_core import from_json

from shared.contracts.base import json_bytes


class JsonText(bytes):
    """A JSON value already serialised (UTF-8): a `json`/`jsonb` parameter or COPY value
    written as it is instead of encoded again. For values whose bytes are made anyway
    (a receipt hashed over its canonical form, an output's payload)."""


def _jsonb_out(value: object) -> bytes:
    if type(value) is JsonText:
        return b"\x01" + value
    return b"\x01" + json_bytes(value)  # jsonb's binary form: version 1, then the text


def _json_value(text: bytes) -> object:
    """A column's JSON text as Python values. By pydantic-core's parser, which reads it
    in about 40 % of the time `json.loads` takes (it decodes every profile and context
    the hot paths read back). Values it refuses and `json.loads` reads (an escaped lone
    surrogate, which a `json` column may hold) are read by `json.loads`, so a row that
    could be read before still is."""
    try:
        return from_json(text)
    except ValueError:
        return json.loads(text.decode())


def _jsonb_in(data: bytes) -> object:
    return _json_value(data[1:])  # jsonb's binary form: version 1, then the text


def _json_in(data: bytes) -> object:
    return _json_value(data)


def _json_out(value: object) -> bytes:
    if type(value) is JsonText:
        return bytes(value)
    return json_bytes(value)


async def _init_connection(conn: asyncpg.Connection) -> None:
    """JSON columns take and give Python values. In binary format, so that they can also
    be written by binary COPY (`shared.db.batches.copy_rows`)."""
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_out, decoder=_jsonb_in, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=_json_out, decoder=_json_in, schema="pg_catalog", format="binary"
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection goes back to the pool with: nothing more to undo.

    asyncpg by default sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a round trip per unit of work, relay cycle and mail
    claim, which on loopback costs the sender about as much as a statement. Before this
    runs asyncpg has already rolled back any open transaction and dropped the
    connection's listeners. Nothing else outlives a transaction on these connections:
    advisory locks are transaction-level (`shared.db.locks`), settings come with the
    connection (`server_settings`), no cursor is held outside a transaction, and the one
    LISTEN (`shared.db.notify`) is removed before its connection is released. Migrations,
    which take a session lock and set the search path, use a connection of their own."""


async def create_pool(dsn: str, schema: str, size: int = 8) -> asyncpg.Pool:
    """A pool whose connections work inside `schema` (created if missing), released
    without a reset round trip (`_keep_session`)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await conn.close()
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": schema, "application_name": f"consentflow-{schema}"},
    )
