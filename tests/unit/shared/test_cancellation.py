"""Retrying loops stop when cancelled, even when cleanup replaced the cancellation with
an error of its own (shared/cancellation.py; the mail worker's stop hung on this)."""

from __future__ import annotations

import asyncio

import asyncpg

from shared.cancellation import raise_if_cancelled, stop_tasks
from shared.db.uow import UnitOfWork


class CleanupFailed(Exception):
    pass


async def _step(turns: list[int]) -> None:
    """Work whose cleanup fails when it is cancelled the first time, as a rollback on a
    connection whose statement was just cancelled does."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        if len(turns) == 1:
            raise CleanupFailed("another operation is in progress") from None
        raise


async def _retrying(checked: bool, turns: list[int]) -> None:
    while True:
        turns.append(1)
        try:
            await _step(turns)
        except CleanupFailed:
            if checked:
                raise_if_cancelled()
            await asyncio.sleep(0.01)


async def test_x2_a_retrying_loop_stops_though_an_error_hid_its_cancellation() -> None:
    turns: list[int] = []
    task = asyncio.create_task(_retrying(True, turns))
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done and task.cancelled() and len(turns) == 1


async def test_x2_without_the_check_the_loop_goes_on_and_stop_tasks_cancels_it_again() -> None:
    """What the check is for: unchecked, the loop outlives the cancellation; stop_tasks
    cancels it again (here the second cancellation is not hidden) until it ends."""
    turns: list[int] = []
    task = asyncio.create_task(_retrying(False, turns))
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.2)
    assert not done and len(turns) == 2  # the cancellation was lost
    await asyncio.wait_for(stop_tasks([task], again_s=0.05), 5)
    assert task.cancelled()


async def test_x2_raise_if_cancelled_is_silent_when_nobody_asked_to_stop() -> None:
    async def check() -> str:
        raise_if_cancelled()
        try:
            async with asyncio.timeout(0.01):  # a cancellation asyncio.timeout takes back
                await asyncio.sleep(1)
        except TimeoutError:
            pass
        raise_if_cancelled()
        return "went on"

    assert await asyncio.create_task(check()) == "went on"


class _Transaction:
    def __init__(self, rollback_fails: bool) -> None:
        self.rollback_fails = rollback_fails

    async def start(self) -> None:
        pass

    async def rollback(self) -> None:
        if self.rollback_fails:
            # What a CancelRequest that arrived late does to the next statement.
            raise asyncpg.QueryCanceledError("canceling statement due to user request")


class _Connection:
    def __init__(self, rollback_fails: bool) -> None:
        self.tx = _Transaction(rollback_fails)
        self.terminated = False

    def transaction(self) -> _Transaction:
        return self.tx

    def is_closed(self) -> bool:
        return self.terminated

    def terminate(self) -> None:
        self.terminated = True


class _Connections:
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.released: list[_Connection] = []

    async def acquire(self) -> _Connection:
        return self.conn

    async def release(self, conn: _Connection) -> None:
        self.released.append(conn)


async def _cancelled_inside(connections: _Connections) -> asyncio.Task[None]:
    entered = asyncio.Event()

    async def work() -> None:
        async with UnitOfWork(connections, "s"):  # type: ignore[arg-type]
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(work())
    await entered.wait()
    task.cancel()
    await asyncio.wait([task], timeout=5)
    return task


async def test_x2_a_failed_rollback_does_not_replace_the_cancellation() -> None:
    """The unit of work leaves on the cancellation, not on the rollback's error (which a
    retrying loop would take for the database's); the connection, whose state is now
    unknown, is closed, and the server rolls the transaction back."""
    connections = _Connections(_Connection(rollback_fails=True))
    task = await _cancelled_inside(connections)
    assert task.cancelled()
    assert connections.conn.terminated and connections.released == [connections.conn]


async def test_x2_a_rollback_that_goes_through_keeps_the_connection() -> None:
    connections = _Connections(_Connection(rollback_fails=False))
    task = await _cancelled_inside(connections)
    assert task.cancelled()
    assert not connections.conn.terminated and connections.released == [connections.conn]
