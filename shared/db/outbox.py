"""The outbox relay: publishes committed outbox rows to Kafka in batches (X2).

Rows are claimed with `FOR UPDATE SKIP LOCKED` in id order and deleted by the same
statement, sent without awaiting each one (aiokafka batches them), and the transaction
commits only after every send in the batch was acknowledged by the broker. A crash or a
failed send before the commit rolls the delete back and publishes the batch again:
consumers dedupe by message id, so that is a duplicate on the wire, never a loss. The
relay sleeps until a unit of work wakes it: one on the relay's own pool by a call after its
commit, any other (another replica's, a tool's) by NOTIFY, which the relay LISTENs for
(`shared.db.wakes`); a short poll is the fallback, so it does not scan by id gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
from operator import itemgetter
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from shared.cancellation import raise_if_cancelled
from shared.contracts.outputs import DeadLetter
from shared.contracts.topics import dlq
from shared.db import wakes
from shared.db.notify import listen_forever
from shared.db.uow import notify_channel
from shared.health import report_progress, report_trouble
from shared.limits import kept_original
from shared.logging import get_logger
from shared.messaging.clients import MAX_BATCH_BYTES
from shared.metrics import OUTBOX_PUBLISHED

log = get_logger(__name__)

_PARTITIONER = DefaultPartitioner()
"""The producer's default partitioner (`shared.messaging.clients.make_producer` sets no
other): a keyed row lands where `send` would have put it, so a key keeps its partition."""

_ALONE_BYTES = MAX_BATCH_BYTES // 2
"""A row this large goes alone: a batch holding it could pass the request limit."""


def _retriable(exc: BaseException) -> bool:
    """Whether sending again can succeed (the broker away or busy), as opposed to a record
    the broker will never accept (too large, invalid, not authorised)."""
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in (
            "KafkaConnectionError",
            "KafkaTimeoutError",
            "NodeNotReadyError",
            "RequestTimedOutError",
        )
    return True


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        batch_size: int = 1000,
        idle_poll_s: float = 1.0,
        topic_prefix: str = "",
    ) -> None:
        self._pool = pool
        # Rows hold topic names without the cluster's `KAFKA_TOPIC_PREFIX`; it goes on here.
        self._prefix = topic_prefix
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish one batch of committed rows; returns how many went out."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Claimed and deleted in one round trip; the delete stands only if the
            # transaction commits, after the broker acknowledged every send.
            rows = await conn.fetch(
                "WITH claimed AS (SELECT id FROM outbox"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)"
                " DELETE FROM outbox o USING claimed c WHERE o.id = c.id"
                " RETURNING o.id, o.topic, o.key, o.value, o.headers",
                self._batch_size,
            )
            if not rows:
                return 0
            rows.sort(key=itemgetter("id"))  # RETURNING keeps no order; the topic's order is id's
            results = await self._publish(rows)
            refused = [
                (row, exc)
                for row, exc in zip(rows, results, strict=True)
                if isinstance(exc, BaseException) and not _retriable(exc)
            ]
            retry = [exc for exc in results if isinstance(exc, BaseException) and _retriable(exc)]
            if retry:
                # The broker is away or busy: keep the whole batch and try again.
                raise retry[0]
            for row, exc in refused:
                # The broker will never take this record: publishing it again would hold
                # every row behind it forever. Dead-letter it with the reason instead.
                await (await self._send_dead_letter(row, exc))
        OUTBOX_PUBLISHED.inc(len(rows) - len(refused))
        return len(rows)

    async def _publish(self, rows: list[asyncpg.Record]) -> list[BaseException | None]:
        """Send `rows` (in id order) and wait for the broker; returns each row's failure,
        or None once it is acknowledged.

        Keyed rows go out as one record batch per topic and partition (the partition
        the producer's own default partitioner would choose for the key), filled in id
        order, so a partition gets its rows in the order they were committed. Sent record
        by record (a future, metadata and callbacks each), the relay took 16-22 µs of CPU
        per row; by batches, 9-11 (`python -m bench.relay`, 7 Dec 2026).

        A row without a key, every row of a topic the producer has no partitions for,
        and a row larger than half a batch go alone by `send`, as before: `send` refuses
        a record over the producer's request limit, which a batch would carry to the
        broker (`publish` refuses such rows, but older ones may be waiting). A batch the
        broker refuses for good is sent again row by row, so that only the rows it
        refuses are dead-lettered."""
        outcome: list[BaseException | None] = [None] * len(rows)
        partitions: dict[str, list[int]] = {}
        open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        sent: list[tuple[asyncio.Future[Any], list[int]]] = []

        async def submit(tp: tuple[str, int]) -> None:
            batch, members = open_batches.pop(tp)
            sent.append((await self._submit(batch, *tp), members))

        for i, row in enumerate(rows):
            topic = self._prefix + row["topic"]
            if topic not in partitions:
                partitions[topic] = await self._partitions(topic)
            parts = partitions[topic]
            key, value = row["key"], row["value"]
            tp = (topic, _PARTITIONER(key, parts, parts)) if key is not None and parts else None
            if tp is None or len(value or b"") > _ALONE_BYTES:  # it goes alone
                if tp in open_batches:
                    await submit(tp)  # the rows before it on its partition go first
                sent.append((await self._send(row), [i]))
                continue
            headers = [(k, v.encode()) for k, v in row["headers"].items()]
            while True:
                if tp not in open_batches:
                    open_batches[tp] = (self._producer.create_batch(), [])
                batch, members = open_batches[tp]
                if batch.append(timestamp=None, key=key, value=value, headers=headers) is not None:
                    members.append(i)
                    break
                await submit(tp)  # full: it goes, and a new one takes the row
        for tp in list(open_batches):
            await submit(tp)
        results = await asyncio.gather(*(f for f, _ in sent), return_exceptions=True)
        again: list[int] = []
        for (_, members), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                if len(members) > 1 and not _retriable(result):
                    again += members
                for i in members:
                    outcome[i] = result
        if again:
            futures = [await self._send(rows[i]) for i in again]
            retried = await asyncio.gather(*futures, return_exceptions=True)
            for i, result in zip(again, retried, strict=True):
                outcome[i] = result if isinstance(result, BaseException) else None
        return outcome

    async def _partitions(self, topic: str) -> list[int]:
        """The topic's partitions in id order, as the producer's partitioner takes them;
        none when the producer cannot learn them (its rows then go by `send`, which
        reports why)."""
        try:
            return sorted(await self._producer.partitions_for(topic))
        except KafkaError:
            return []

    async def _submit(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        """Queue a closed record batch; a failure to queue it comes back as a failed
        future, as `_send` does for one record."""
        batch.close()
        try:
            return await self._producer.send_batch(batch, topic, partition=partition)
        except KafkaError as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def _send(self, row: asyncpg.Record) -> asyncio.Future[Any]:
        """Start sending one row; a record refused before it leaves (too large for the
        producer) comes back as a failed future instead of an exception."""
        try:
            return await self._producer.send(
                self._prefix + row["topic"],
                value=row["value"],
                key=row["key"],
                headers=[(k, v.encode()) for k, v in row["headers"].items()],
            )
        except KafkaError as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def _send_dead_letter(self, row: asyncpg.Record, exc: BaseException) -> Any:
        value = row["value"] or b""
        original, truncated = kept_original(value)
        key = row["key"].decode(errors="replace") if row["key"] else None
        letter = DeadLetter(
            consumer=f"{self._schema}.outbox",
            source_topic=row["topic"],
            source_partition=-1,
            source_offset=-1,
            key=key[:1000] if key else key,
            original=original,
            original_size=len(value),
            original_truncated=truncated,
            error=f"the broker refused the record: {type(exc).__name__}: {exc}"[:4000],
        )
        log.error("outbox record refused; dead-lettered", topic=row["topic"], error=repr(exc))
        return await self._producer.send(
            self._prefix + dlq(row["topic"]), value=letter.to_bytes(), key=row["key"]
        )

    async def run(self) -> None:
        """Publish until cancelled; failures are logged and retried with backoff."""
        listening = asyncio.create_task(
            listen_forever(self._pool, notify_channel(self._schema), self._on_notify)
        )
        # Units of work on this pool wake this relay by a call, without notifying.
        wakes.register(self._pool, self._schema, self._wake.set)
        backoff = 0.1
        try:
            while True:
                self._wake.clear()
                try:
                    sent = await self.publish_pending()
                    backoff = 0.1
                    report_progress(f"outbox.{self._schema}")
                except Exception as exc:
                    raise_if_cancelled()
                    log.warning("outbox publish failed; retrying", error=repr(exc))
                    if backoff >= 1.0:  # a blip is not trouble; a second of failures is
                        report_trouble(f"outbox.{self._schema}", f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if sent == self._batch_size:
                    await asyncio.sleep(0)  # let consumers run between full batches
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
        finally:
            wakes.unregister(self._pool, self._schema, self._wake.set)
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()
