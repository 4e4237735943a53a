"""Returning a connection to the pool: no reset round trip, and nothing of the last
borrower's transaction carried to the next."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db.pool import create_pool


@pytest.fixture
async def one_connection(stack):
    """A pool of exactly one connection, so the next borrower gets the same session."""
    pool = await create_pool(stack.dsn, "pool_release", size=1)
    try:
        yield pool
    finally:
        await pool.close()


async def _last_statement(dsn: str, pid: int) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await conn.close()


async def test_release_sends_no_reset_query(stack, one_connection: asyncpg.Pool) -> None:
    async with one_connection.acquire() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
    # The server's view of the session: the last statement is still the borrower's own,
    # not asyncpg's default `... RESET ALL` on release.
    assert await _last_statement(stack.dsn, pid) == "SELECT pg_backend_pid()"


async def test_release_rolls_back_an_open_transaction(one_connection: asyncpg.Pool) -> None:
    async with one_connection.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS kept (n int)")
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO kept VALUES (1)")
        # released mid-transaction, as a cancelled task would leave it
    async with one_connection.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM kept") == 0


@pytest.mark.filterwarnings("ignore::asyncpg.InterfaceWarning")  # the borrower's own slip
async def test_release_drops_the_borrowers_listeners(one_connection: asyncpg.Pool) -> None:
    heard: list[str] = []
    async with one_connection.acquire() as conn:
        await conn.add_listener("pool_release", lambda *args: heard.append(args[-1]))
    async with one_connection.acquire() as conn:
        await conn.execute("NOTIFY pool_release, 'after release'")
        await conn.fetchval("SELECT 1")  # a round trip for any notification to arrive
    assert heard == []
