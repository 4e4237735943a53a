"""A fresh PostgreSQL schema holding one service's tables, for the repository contract
suites: each backend under test is either the in-memory fake or the PostgreSQL
repository on a unit of work in this schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.db import Database
from shared.db.migrations import migration_files


@asynccontextmanager
async def migrated_database(dsn: str, service: str) -> AsyncIterator[Database]:
    """`service`'s migrations applied to a schema of its own, dropped afterwards."""
    schema = f"t_{service}_{uuid.uuid4().hex[:8]}"
    database = Database(dsn, schema, 2)
    await database.start()
    try:
        async with database.pool.acquire() as conn:
            for _, sql in migration_files(service):
                await conn.execute(sql)
        yield database
    finally:
        async with database.pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await database.close()
