"""asyncpg pools bound to one service's schema.

Each service owns one PostgreSQL schema (SPEC "Architecture"); its pool sets
`search_path` to that schema, so its SQL names tables without a prefix and cannot reach
another service's tables by accident.
"""

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for pg_type in ("json", "jsonb"):
        await conn.set_type_codec(
            pg_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(dsn: str, schema: str, size: int = 8) -> asyncpg.Pool:
    """A pool whose connections work inside `schema` (created if missing)."""
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
        server_settings={"search_path": schema, "application_name": f"consentflow-{schema}"},
    )
