"""PostgreSQL for the services: a pool per service schema, the unit of work, the outbox
relay, the inbox, the mail queue and the migrations runner."""

from __future__ import annotations

import asyncpg

from shared.db.pool import create_pool
from shared.db.uow import UnitOfWork


class Database:
    """One service's view of PostgreSQL: its schema and a pool opened at start-up (nothing
    connects at import time)."""

    def __init__(self, dsn: str, schema: str, pool_size: int = 8) -> None:
        self.dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database not started")
        return self._pool

    async def start(self) -> None:
        self._pool = await create_pool(self.dsn, self.schema, self._pool_size)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def uow(self) -> UnitOfWork:
        """A new unit of work (`async with db.uow() as uow: ...; await uow.commit()`)."""
        return UnitOfWork(self.pool, self.schema)

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
            return True
        except Exception:
            return False
