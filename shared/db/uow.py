"""The unit of work: one asyncpg transaction holding a batch's state changes, its
outbox rows and its inbox rows, so they commit or roll back together (X2).

    async with UnitOfWork(pool, schema) as uow:
        fresh = await uow.claim("consent", ids)     # inbox: skip what was processed
        ...                                         # state changes on uow.conn
        uow.publish(topics.CONSENT_CHANGES, key, message)
        await uow.commit()

Leaving the block without `commit()` rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

import asyncpg

from shared.contracts.base import Message
from shared.contracts.outputs import DeadLetter
from shared.contracts.topics import dlq
from shared.db import wakes
from shared.db.batches import copy_rows
from shared.limits import MAX_OUTPUT_BYTES, kept_original, too_large
from shared.logging import get_logger
from shared.messaging.headers import REQUEST_TRACE
from shared.received import Received, Trace, shared_trace

log = get_logger(__name__)


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes `schema`'s outbox relay."""
    return f"outbox_{schema}"


class Connections(Protocol):
    """Where a unit of work takes its connection from and gives it back: a pool, or a
    loop's one kept connection (the mail worker's, which a pool would reset with four
    statements on every release). A kept connection may name the pool it was taken from
    as `origin`, so that its commits wake that pool's relay by a call."""

    async def acquire(self) -> asyncpg.Connection: ...

    async def release(self, conn: asyncpg.Connection) -> Any: ...


class UnitOfWork:
    def __init__(self, pool: Connections | asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self._schema = schema
        self._outbox: list[tuple[str, bytes | None, bytes | None, dict[str, str]]] = []
        self.conn: asyncpg.Connection = None  # type: ignore[assignment]
        self._tx: asyncpg.transaction.Transaction | None = None
        self._committed = False
        # The inputs whose traces outputs carry (correlation id, trace context), and
        # the same by message key once an output asks.
        self._inputs: Sequence[Received[Any]] = ()
        self._carried: dict[str | None, Received[Any]] | None = None
        # Opened while serving an HTTP request: its outputs carry the request's trace.
        self._carried_default: Trace | None = REQUEST_TRACE.get()

    def carry(self, inputs: Sequence[Received[Any]]) -> None:
        """The inputs being applied: an output published with the key of one of them
        (outputs about a profile are keyed by its id, as the inputs are) carries its
        trace; per key, a trace the producer sent wins over one made up here. When all
        inputs share one trace, every output carries it. Looked up per output, when it
        is published, not per input: most inputs cause none."""
        self._inputs = inputs
        self._carried = None

    def _carried_trace(self, key: str | None) -> Trace | None:
        if self._carried is None:
            by_key: dict[str | None, Received[Any]] = {}
            for item in self._inputs:
                seen = by_key.get(k := item.key)
                if seen is None or item.carries_trace or not seen.carries_trace:
                    by_key[k] = item
            self._carried = by_key
            if by_key:  # else the HTTP request's trace, if any, stays the default
                self._carried_default = shared_trace(list(by_key.values()))
        item = self._carried.get(key)
        return item.trace if item is not None else self._carried_default

    async def __aenter__(self) -> Self:
        self.conn = await self._pool.acquire()
        self._tx = self.conn.transaction()
        await self._tx.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed and self._tx is not None:
                if self.conn.is_closed():
                    # The server is gone and took the transaction with it; raising here
                    # would hide the error that says so.
                    self._tx = None
                elif exc_type is None:
                    await self._tx.rollback()
                else:
                    await self._roll_back_under(exc)
        finally:
            await self._pool.release(self.conn)

    async def _roll_back_under(self, exc: BaseException | None) -> None:
        """Roll back while leaving on `exc`, which stays the exception raised. A
        rollback that fails (a cancelled statement still runs: "another operation is in
        progress") would replace it, and a cancellation would become a database error
        that a retrying loop goes on after (`shared.cancellation`). The connection is
        closed instead, and the server rolls the transaction back with it."""
        try:
            await self._tx.rollback()  # type: ignore[union-attr]
        except Exception as failed:
            log.debug("rollback failed; connection closed", error=repr(failed), cause=repr(exc))
            self.conn.terminate()

    def publish(
        self,
        topic: str,
        key: str | None,
        message: Message | bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Record a message to publish once this transaction commits (outbox). Without
        `headers` it carries those of the input it answers (see `carry`)."""
        value = message.to_bytes() if isinstance(message, Message) else message
        if headers is None:
            trace = self._carried_trace(key)
            headers = trace.headers() if trace is not None else None
        if value is not None and (problem := too_large(len(value), MAX_OUTPUT_BYTES)):
            # The broker would refuse it and the relay would hold it (and everything
            # behind it) forever: a dead letter with the reason goes out instead.
            original, truncated = kept_original(value)
            letter = DeadLetter(
                consumer=f"{self._schema}.outbox",
                source_topic=topic,
                source_partition=-1,
                source_offset=-1,
                key=key[:1000] if key else key,
                original=original,
                original_size=len(value),
                original_truncated=truncated,
                error=f"output not published: {problem}",
            )
            log.error("output too large; dead-lettered", topic=topic, size=len(value))
            topic, value, headers = dlq(topic), letter.to_bytes(), None
        self._outbox.append(
            (topic, key.encode() if key is not None else None, value, dict(headers or {}))
        )

    def outbox_mark(self) -> int:
        """A point to `rewind_outbox` to, taken with a savepoint."""
        return len(self._outbox)

    def rewind_outbox(self, mark: int) -> None:
        """Forget what was published since `mark` (its savepoint was rolled back)."""
        del self._outbox[mark:]

    async def claim(self, consumer: str, message_ids: Iterable[str]) -> set[str]:
        """Record message ids as processed by `consumer`; returns the ids seen for the first
        time (inbox). A redelivered message is claimed by nobody and so skipped."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return set()
        rows = await self.conn.fetch(
            "INSERT INTO processed_messages (consumer, message_id)"
            " SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING message_id",
            consumer,
            ids,
        )
        return {r["message_id"] for r in rows}

    async def commit(self) -> None:
        """Write the outbox rows, commit everything at once, and wake the relay: the one
        in this process on this pool by a call after the commit, else every relay by a
        notification that PostgreSQL delivers at the commit (`shared.db.wakes`)."""
        # A loop's kept connection (`Connections`) names the pool it comes from.
        origin = getattr(self._pool, "origin", self._pool)
        relays = wakes.local(origin, self._schema) if self._outbox else ()
        if self._outbox:
            await copy_rows(
                self.conn,
                "outbox",
                ("topic", "key", "value", "headers"),
                self._outbox,
            )
            if not relays:
                await self.conn.execute("SELECT pg_notify($1, '')", notify_channel(self._schema))
        assert self._tx is not None
        await self._tx.commit()
        self._committed = True
        self._outbox.clear()
        for wake in relays:
            wake()
