"""The delay scheduler (F3): fires due delays and quiet-hours holds (F8) in passes, each
pass one transaction of `handlers.fire_due_timers` over the executor's unit of work.
Any number of replicas may run it: `FOR UPDATE SKIP LOCKED` hands each due row to one
of them, no leader needed."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.flow_executor import handlers
from services.flow_executor.ports import FlowWork
from shared.cancellation import raise_if_cancelled
from shared.db import Database
from shared.db.errors import DB_ERRORS
from shared.db.uow import UnitOfWork
from shared.health import report_progress, report_trouble
from shared.logging import get_logger

log = get_logger(__name__)


class SchedulerSettings(BaseSettings):
    """The scheduler's own tuning (`FLOW_SCHEDULER_BATCH`): how many due delays one
    pass claims. Smaller batches spread a burst of due delays over more replicas."""

    model_config = SettingsConfigDict(env_prefix="FLOW_SCHEDULER_", extra="ignore")

    batch: int = 500


class Scheduler:
    """Passes of the scheduler on `db`, with the use cases' work made by `work`."""

    def __init__(
        self,
        db: Database,
        work: Callable[[UnitOfWork], FlowWork],
        batch: int,
        interval_s: float,
    ) -> None:
        self.db = db
        self.work = work
        self.batch = batch
        self.interval_s = interval_s
        self.replica = f"{socket.gethostname()}:{os.getpid()}"

    async def fire(self, limit: int) -> int:
        """One pass: fire up to `limit` due delays in one transaction."""
        async with self.db.uow() as uow:
            fired = await handlers.fire_due_timers(self.work(uow), limit, self.replica)
            await uow.commit()
        return fired

    async def set_aside(self, reason: str) -> bool:
        """Mark the earliest due delay failed, so that the passes move past it."""
        async with self.db.uow() as uow:
            found = await self.work(uow).runs.fail_next_due_timer(self.replica, reason)
            await uow.commit()
        return found

    async def fire_singly(self, limit: int) -> int:
        """Fire one delay at a time; one whose walk raises is set aside (F3)."""
        done = 0
        for _ in range(limit):
            try:
                if not await self.fire(1):
                    break
            except DB_ERRORS:
                break
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("a due delay cannot be fired; set aside", error=reason)
                try:
                    if not await self.set_aside(reason):
                        break
                except DB_ERRORS:
                    break
            done += 1
        return done

    async def run(self) -> None:
        """Fire due delays until the service stops."""
        while True:
            try:
                fired = await self.fire(self.batch)
                report_progress("scheduler")
            except DB_ERRORS as exc:
                raise_if_cancelled()
                log.warning("scheduler pass failed", error=str(exc))
                report_trouble("scheduler", f"database: {exc}")
                fired = 0
                await asyncio.sleep(1.0)
            except Exception as exc:
                raise_if_cancelled()
                # One run whose walk raises must not hold every due delay behind it:
                # fire one at a time, and set aside the one that fails (F3).
                log.exception("scheduler pass failed; firing one at a time", error=repr(exc))
                fired = await self.fire_singly(self.batch)
            if fired < self.batch:
                await asyncio.sleep(self.interval_s)
            else:
                await asyncio.sleep(0)  # let consumers and the outbox relay run


def scheduler(
    db: Database, work: Callable[[UnitOfWork], FlowWork], interval_s: float
) -> Callable[[], Awaitable[None]]:
    """The scheduler's loop as a worker of the service (`FLOW_SCHEDULER_BATCH` per pass)."""
    return Scheduler(db, work, SchedulerSettings().batch, interval_s).run
