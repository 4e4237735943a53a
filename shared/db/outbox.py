"""The outbox relay: publishes committed outbox rows to Kafka in batches (X2).

Rows are claimed with `FOR UPDATE SKIP LOCKED` in id order, sent without awaiting each
one (aiokafka batches them), and deleted in the same transaction only after every send
in the batch was acknowledged by the broker. A crash before the delete publishes the
batch again: consumers dedupe by message id, so that is a duplicate on the wire, never
a loss. The relay sleeps on LISTEN/NOTIFY (the unit of work notifies on commit) with a
short poll as a fallback, so it does not scan by id gaps.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.db.notify import listen_forever
from shared.db.uow import notify_channel
from shared.logging import get_logger
from shared.metrics import OUTBOX_PUBLISHED

log = get_logger(__name__)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        batch_size: int = 1000,
        idle_poll_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish one batch of committed rows; returns how many went out."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers FROM outbox"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            futures = [
                await self._producer.send(
                    r["topic"],
                    value=r["value"],
                    key=r["key"],
                    headers=[(k, v.encode()) for k, v in r["headers"].items()],
                )
                for r in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def run(self) -> None:
        """Publish until cancelled; failures are logged and retried with backoff."""
        listening = asyncio.create_task(
            listen_forever(self._pool, notify_channel(self._schema), self._on_notify)
        )
        backoff = 0.1
        try:
            while True:
                self._wake.clear()
                try:
                    sent = await self.publish_pending()
                    backoff = 0.1
                except (OSError, asyncpg.PostgresError, Exception) as exc:
                    log.warning("outbox publish failed; retrying", error=str(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if sent == self._batch_size:
                    await asyncio.sleep(0)  # let consumers run between full batches
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()
