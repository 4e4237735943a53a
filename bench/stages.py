"""Where a consumer's time goes, stage by stage: decode, decide, persist, publish.

`with Stages().instrument(consumer):` wraps one service's `BatchApplier` (as `bench.intake`
drives it) without changing it:

- **decode**: `BatchApplier.decode`, bytes to checked messages (X1);
- **persist**: every awaited call on the unit of work's repositories, the inbox claim
  and the transaction's commit: the state rows, with the wait for PostgreSQL;
- **publish**: `work.publish` (building and serialising each output) and the outbox rows
  written at commit (the relay's send is the Kafka client's, measured by `python -m
  bench` as the service's whole CPU);
- **decide**: the rest of the use case: the pure domain deciding what follows.

CPU is this thread's (`time.thread_time`), so a wait for PostgreSQL costs persist
nothing here; PostgreSQL's own CPU and rows are given apart, split between persist and
publish by statement (`pg_stat_statements`: statements on `outbox` are publish).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.db import uow as uow_module
from shared.messaging.batches import BatchApplier

STAGES = ("decode", "decide", "persist", "publish")


@dataclass
class Stages:
    """Thread CPU seconds per stage, summed over what ran while instrumented."""

    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    _inner: float = 0.0  # persist + publish time inside the use case, to net out of decide

    def reset(self) -> None:
        self.cpu = dict.fromkeys(STAGES, 0.0)

    def _timed_sync(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - t0
                self.cpu[stage] += spent
                self._inner += spent

        return timed

    def _timed_async(self, stage: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - t0
                self.cpu[stage] += spent
                self._inner += spent

        return timed

    @contextlib.contextmanager
    def instrument(self, consumer: BatchApplier) -> Iterator[None]:
        """Count `consumer`'s stages inside the block (it and the unit of work are
        changed in place, and put back after, so a second measure does not count
        through the first one's wrappers)."""
        decode, handler, make_work = consumer.decode, consumer.handler, consumer.work
        consumer.decode = self._timed_sync("decode", decode)  # type: ignore[method-assign]
        consumer.work = lambda uow: _TimedWork(make_work(uow), self)

        async def use_case(batch: Any, work: Any) -> None:
            self._inner = 0.0
            t0 = time.thread_time()
            await handler(batch, work)
            self.cpu["decide"] += time.thread_time() - t0 - self._inner

        consumer.handler = use_case
        claim, commit = uow_module.UnitOfWork.claim, uow_module.UnitOfWork.commit
        copy_rows = uow_module.copy_rows
        uow_module.UnitOfWork.claim = self._timed_async("persist", claim)  # type: ignore[method-assign]
        uow_module.copy_rows = self._timed_async("publish", copy_rows)

        async def commit_timed(uow: Any) -> None:
            t0 = time.thread_time()
            inner = self._inner
            await commit(uow)
            # The outbox rows (timed as publish inside) are not persist.
            self.cpu["persist"] += time.thread_time() - t0 - (self._inner - inner)

        uow_module.UnitOfWork.commit = commit_timed  # type: ignore[method-assign]
        try:
            yield
        finally:
            consumer.decode, consumer.handler, consumer.work = decode, handler, make_work  # type: ignore[method-assign]
            uow_module.UnitOfWork.claim, uow_module.UnitOfWork.commit = claim, commit  # type: ignore[method-assign]
            uow_module.copy_rows = copy_rows


class _TimedRepository:
    """A repository whose coroutine methods count as persist. One class for every
    proxy: a class made per access (as before 7 Dec 2026) is a reference cycle, and the
    thousands a batch made set off the collections they then paid for, a third of
    consent's measured CPU per command."""

    __slots__ = ("_stages", "_target")

    def __init__(self, target: Any, stages: Stages) -> None:
        self._target, self._stages = target, stages

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.iscoroutinefunction(value):
            return self._stages._timed_async("persist", value)
        return value


class _TimedWork(_TimedRepository):
    """The unit of work: `publish` counts as publish, its repositories as persist."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name == "publish":
            return self._stages._timed_sync("publish", value)
        if inspect.iscoroutinefunction(value):
            return self._stages._timed_async("persist", value)
        if callable(value) or isinstance(value, str | bytes | int | float | bool):
            return value
        return _TimedRepository(value, self._stages)


def split_database(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """PostgreSQL's statements, rows and execution ms (`pg_stat_statements` rows with
    `query`, `calls`, `rows`, `ms`) split between persist and publish (the outbox)."""
    out = {s: {"statements": 0.0, "rows": 0.0, "ms": 0.0} for s in ("persist", "publish")}
    for r in rows:
        stage = "publish" if "outbox" in r["query"] else "persist"
        out[stage]["statements"] += r["calls"]
        out[stage]["rows"] += r["rows"]
        out[stage]["ms"] += r["ms"]
    return out


def table(
    service: str, per_message_us: dict[str, float], database: dict[str, dict[str, float]]
) -> str:
    """The stage table as Markdown: our CPU µs, PostgreSQL's, and rows, per message."""
    lines = [
        f"| {service}: stage | CPU µs per message (service) | PostgreSQL µs | rows |",
        "|---|---|---|---|",
    ]
    for stage in STAGES:
        db = database.get(stage, {})
        pg = f"{db['pg_us']:.1f}" if "pg_us" in db else "–"
        rows = f"{db['rows']:.2f}" if "rows" in db else "0"
        lines.append(f"| {stage} | {per_message_us[stage]:.1f} | {pg} | {rows} |")
    total = sum(per_message_us.values())
    pg_total = sum(d.get("pg_us", 0.0) for d in database.values())
    rows_total = sum(d.get("rows", 0.0) for d in database.values())
    lines.append(f"| **all** | **{total:.1f}** | **{pg_total:.1f}** | **{rows_total:.2f}** |")
    return "\n".join(lines)
