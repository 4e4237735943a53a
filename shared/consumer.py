"""Reading one topic in one consumer group, batch after batch, with our own loop over
aiokafka (no framework subscriber in between), so that every failure has a defined end:

- a batch is handed to its `BatchConsumer` (which parses each record on its own and
  dead-letters bad ones); its offsets are committed after the batch's transaction;
- a batch that fails (the database is down, the handler raised) is not committed: the
  partitions are sought back to the batch's first offsets and read again after a pause,
  and the component reports the error to `/readyz` until a batch goes through;
- a record batch that aiokafka cannot decode (an unknown codec, a bad CRC, a header
  name that is not UTF-8) raises inside the client for a whole fetch. The partitions are
  then read one record at a time from the last applied offset: the good records are
  applied, and each offset that still cannot be decoded is dead-lettered by reference
  (topic, partition, offset, error: there are no bytes to keep) and skipped. Nothing is
  retried forever.

Each consumer reports into the readiness registry (`shared.health`): joining, partitions
held, errors, lag per partition and the time of the last applied batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from itertools import chain

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError, CorruptRecordException, UnsupportedCodecError
from aiokafka.structs import OffsetAndMetadata

from shared.db.errors import TRANSIENT_DB_ERRORS
from shared.health import HEALTH, Component, Health
from shared.kafka import BatchConsumer, dead_letter_reference
from shared.kafka_clients import make_consumer
from shared.logging import get_logger
from shared.metrics import CONSUMER_LAG, LAST_BATCH
from shared.settings import Settings

log = get_logger(__name__)

# What aiokafka raises while unpacking a fetched record batch it cannot read.
UNDECODABLE = (UnsupportedCodecError, CorruptRecordException, UnicodeDecodeError, ValueError)

RETRY_PAUSE_S = 1.0
LAG_EVERY_S = 1.0


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: TopicConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.owner.applied_to.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.owner.component.assigned(len(self.owner.consumer.assignment()))


class TopicConsumer:
    """One topic in one consumer group; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        batch: BatchConsumer,
        group: str,
        client_id: str,
        health: Health = HEALTH,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.address = settings.kafka_topic(topic)
        self.group_id = settings.kafka_group(group)
        self.client_id = client_id
        self.batch = batch
        self.component: Component = health.register(
            batch.consumer,
            kind="consumer",
            stall_s=settings.kafka_stall_s,
            grace_s=settings.kafka_partition_grace_s,
        )
        self.consumer: AIOKafkaConsumer | None = None
        # The next offset to read per partition, as far as this consumer applied.
        self.applied_to: dict[TopicPartition, int] = {}
        self._lag_at = 0.0

    async def start(self) -> None:
        """Join the group (waits for the first assignment)."""
        self.consumer = make_consumer(self.settings, self.group_id, self.client_id)
        self.consumer.subscribe([self.address], listener=_Assignment(self))
        await self.consumer.start()
        self.component.assigned(len(self.consumer.assignment()))

    async def stop(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    async def run(self) -> None:
        """Consume until cancelled or stopped."""
        assert self.consumer is not None
        consumer = self.consumer
        wait_ms = self.settings.kafka_batch_timeout_ms
        limit = self.settings.kafka_max_batch_records
        while True:
            try:
                fetched = await consumer.getmany(timeout_ms=wait_ms, max_records=limit)
            except ConsumerStoppedError:
                return
            except UNDECODABLE as exc:
                try:
                    await self._step_past_undecodable(exc)
                except Exception as inner:
                    self.component.failed(f"stepping past an undecodable batch: {inner!r}")
                    await asyncio.sleep(RETRY_PAUSE_S)
                continue
            except Exception as exc:  # a Kafka error or a client bug: report, pause, retry
                self.component.failed(f"fetch failed: {exc!r}")
                log.warning("fetch failed", consumer=self.batch.consumer, error=repr(exc))
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            records = tuple(chain.from_iterable(fetched.values()))
            if records:
                await self._apply(records)
            else:
                self.component.ok()
            await self._report_lag()

    async def _apply(self, records: tuple[ConsumerRecord, ...]) -> bool:
        """Apply and commit one batch; on failure seek back so it is read again."""
        assert self.consumer is not None
        firsts: dict[TopicPartition, int] = {}
        lasts: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            firsts.setdefault(tp, r.offset)
            lasts[tp] = r.offset
        try:
            await self.batch.handle(records)
            await self.consumer.commit(
                {tp: OffsetAndMetadata(o + 1, "") for tp, o in lasts.items()}
            )
        except Exception as exc:
            transient = isinstance(exc, TRANSIENT_DB_ERRORS)
            self.component.failed(f"batch not applied: {type(exc).__name__}: {exc}")
            log.warning(
                "batch not applied; will retry",
                consumer=self.batch.consumer,
                error=str(exc),
                transient=transient,
            )
            for tp, offset in firsts.items():
                with contextlib.suppress(Exception):
                    self.consumer.seek(tp, offset)
            await asyncio.sleep(RETRY_PAUSE_S)
            return False
        for tp, offset in lasts.items():
            self.applied_to[tp] = offset + 1
        self.component.applied()
        LAST_BATCH.labels(self.batch.consumer).set(time.time())
        return True

    async def _next_offset(self, tp: TopicPartition) -> int:
        if tp in self.applied_to:
            return self.applied_to[tp]
        assert self.consumer is not None
        committed = await self.consumer.committed(tp)
        if committed is None:
            committed = (await self.consumer.beginning_offsets([tp]))[tp]
        self.applied_to[tp] = committed
        return committed

    async def _step_past_undecodable(self, first_error: BaseException) -> None:
        """See the module docstring: one record at a time from the last applied offset,
        dead-lettering by reference what cannot be decoded."""
        assert self.consumer is not None
        consumer = self.consumer
        log.warning(
            "undecodable record batch; reading record by record",
            consumer=self.batch.consumer,
            error=repr(first_error),
        )
        parts = sorted(consumer.assignment())
        for tp in parts:
            consumer.seek(tp, await self._next_offset(tp))
        wait_ms = max(self.settings.kafka_fetch_max_wait_ms * 4, 500)
        for tp in parts:
            for _ in range(self.settings.kafka_max_batch_records):
                try:
                    got = await consumer.getmany(tp, timeout_ms=wait_ms, max_records=1)
                except UNDECODABLE as exc:
                    offset = await self._next_offset(tp)
                    error = f"undecodable record batch: {type(exc).__name__}: {exc}"
                    if not await self._dead_letter_reference(tp, offset, error):
                        return
                    consumer.seek(tp, offset + 1)
                    continue
                records = got.get(tp, [])
                if not records or not await self._apply(tuple(records)):
                    break

    async def _dead_letter_reference(self, tp: TopicPartition, offset: int, error: str) -> bool:
        assert self.consumer is not None
        try:
            await dead_letter_reference(self.batch, self.topic, tp.partition, offset, error)
            await self.consumer.commit({tp: OffsetAndMetadata(offset + 1, "")})
        except Exception as exc:
            self.component.failed(f"dead letter not written: {exc}")
            await asyncio.sleep(RETRY_PAUSE_S)
            return False
        self.applied_to[tp] = offset + 1
        return True

    async def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_at < LAG_EVERY_S or self.consumer is None:
            return
        self._lag_at = now
        total = 0
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            position = self.applied_to.get(tp)
            if position is None:
                with contextlib.suppress(Exception):
                    position = await self.consumer.position(tp)
            if position is None:
                continue
            lag = max(0, high - position)
            total += lag
            CONSUMER_LAG.labels(self.batch.consumer, tp.topic, str(tp.partition)).set(lag)
        self.component.lag = total
        self.component.assigned(len(self.consumer.assignment()))
