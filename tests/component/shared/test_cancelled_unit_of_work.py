"""A unit of work cancelled in the middle of a statement, on the embedded PostgreSQL:
the cancellation is what its caller sees (not the failed rollback behind it), nothing of
the transaction commits, and the pool goes on (X2)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db.pool import create_pool
from shared.db.uow import UnitOfWork
from tests.conftest import eventually


async def _state(dsn: str, pid: int | None) -> str | None:
    admin = await asyncpg.connect(dsn)
    try:
        return await admin.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await admin.close()


@pytest.fixture
async def pool(stack):
    pool = await create_pool(stack.dsn, "cancelled_uow", size=2)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS written (n int)")
        await conn.execute("TRUNCATE written")
    try:
        yield pool
    finally:
        await pool.close()


async def test_x2_a_unit_of_work_cancelled_mid_statement_raises_the_cancellation(
    stack, pool: asyncpg.Pool
) -> None:
    started = asyncio.Event()
    pid: int | None = None

    async def work() -> None:
        nonlocal pid
        async with UnitOfWork(pool, "cancelled_uow") as uow:
            pid = await uow.conn.fetchval("SELECT pg_backend_pid()")
            await uow.conn.execute("INSERT INTO written VALUES (1)")
            started.set()
            await uow.conn.execute("SELECT pg_sleep(30)")
            await uow.commit()

    task = asyncio.create_task(work())
    await asyncio.wait_for(started.wait(), 10)

    async def sleeping() -> bool:  # the server runs the statement
        return await _state(stack.dsn, pid) == "active"

    await eventually(sleeping, 10, 0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done and task.cancelled(), task  # not InterfaceError from the rollback

    async def over() -> bool:
        # closed, or back in the pool with its transaction rolled back
        return await _state(stack.dsn, pid) in (None, "idle")

    await eventually(over, 10, 0.05)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM written") == 0


async def test_x2_a_failure_in_a_unit_of_work_is_raised_and_rolled_back(
    stack, pool: asyncpg.Pool
) -> None:
    """The usual path is unchanged: the error raised inside is the one raised, the
    rollback goes through, the connection goes back to the pool open."""
    with pytest.raises(ValueError, match="inside"):
        async with UnitOfWork(pool, "cancelled_uow") as uow:
            await uow.conn.execute("INSERT INTO written VALUES (2)")
            pid = await uow.conn.fetchval("SELECT pg_backend_pid()")
            raise ValueError("inside")
    assert await _state(stack.dsn, pid) == "idle"  # open, and its transaction rolled back
    async with pool.acquire() as again:
        assert await again.fetchval("SELECT count(*) FROM written") == 0
