"""PostgreSQL for the services: a pool per service schema, the unit of work, the outbox
relay, the inbox, the mail queue and the migrations runner."""

from __future__ import annotations

import asyncio
import contextlib

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

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether the database answers within `timeout_s`: a server that stopped
        answering (frozen, or a network that drops packets) makes readiness say so
        instead of hanging the probe. A connection left waiting mid-query cannot be
        reset, so it is closed rather than handed back."""
        try:
            conn = await self.pool.acquire(timeout=timeout_s)
        except Exception:
            return False
        answered = False
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout_s)
            answered = True
        except Exception:
            conn.terminate()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.release(conn), timeout_s)
        return answered
