"""Kafka for every service: the FastStream broker, batch subscribers with dead-lettering
and inbox dedupe, the outbox producer, and topic creation.

Every hot consumer is a batch subscriber (measured: per-message awaited work runs at
~1.5k msgs/s, batches at 50k+). A batch is handled like this:

1. each record is parsed on its own; a bad one is dead-lettered (X1) and the rest go on;
2. the batch's ids are claimed in the inbox; redeliveries are dropped (X2);
3. the service's handler applies the batch on one transaction and writes its outbox rows;
4. the transaction commits, and only then are the offsets committed (ack after commit).

If the handler raises on a batch, the batch is retried one message at a time so that a
single poisonous message is dead-lettered with its error and nothing else is lost. If the
database is unreachable the batch is not acked: the consumer seeks back and retries.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import BaseModel, ValidationError

from shared.contracts import topics
from shared.contracts.outputs import DeadLetter
from shared.db import Database
from shared.db.errors import TRANSIENT_DB_ERRORS
from shared.db.uow import UnitOfWork
from shared.logging import get_logger
from shared.metrics import BATCH_SECONDS, CONSUMED, DEAD_LETTERS, DUPLICATES
from shared.settings import Settings

log = get_logger(__name__)

M = TypeVar("M")


class Rejected(Exception):
    """A message that is well-formed but breaks a rule; it goes to the dead-letter topic
    with this error (for example C11: re-subscribe without evidence)."""


@dataclass(frozen=True, slots=True)
class Received(Generic[M]):
    """A parsed message with where it came from."""

    message: M
    record: ConsumerRecord

    @property
    def key(self) -> str | None:
        key = self.record.key
        return key.decode(errors="replace") if isinstance(key, bytes) else key

    @property
    def correlation_id(self) -> str | None:
        for name, value in self.record.headers or ():
            if name == "correlation_id":
                return value.decode(errors="replace")
        return None


def describe_error(exc: BaseException) -> str:
    """A short, human-readable reason for a dead letter."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False)[:10]:
            where = ".".join(str(p) for p in err["loc"]) or "message"
            parts.append(f"{where}: {err['msg']}")
        return "invalid message: " + "; ".join(parts)
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, Rejected) else str(exc)


MAX_DEAD_LETTER_ORIGINAL = 256 * 1024


def dead_letter(uow: UnitOfWork, consumer: str, record: ConsumerRecord, error: str) -> None:
    """Queue `record` for `<topic>.dlq` with its original bytes, the error and its offset (X1)."""
    key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else record.key
    value = record.value or b""
    letter = DeadLetter(
        consumer=consumer,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=key[:1000] if key else key,
        original=base64.b64encode(value[:MAX_DEAD_LETTER_ORIGINAL]).decode(),
        original_size=len(value),
        original_truncated=len(value) > MAX_DEAD_LETTER_ORIGINAL,
        error=error[:4000],
    )
    uow.publish(topics.dlq(record.topic), key, letter)
    DEAD_LETTERS.labels(consumer, record.topic).inc()


def json_parser(model: type[BaseModel]) -> Callable[[ConsumerRecord], Any]:
    """Parse a record's value as `model` (JSON); raises on bad bytes or a bad shape."""

    def parse(record: ConsumerRecord) -> Any:
        if record.value is None:
            raise ValueError("message has no value")
        return model.model_validate_json(record.value)

    return parse


BatchHandler = Callable[[UnitOfWork, list[Received[Any]]], Awaitable[None]]


@dataclass
class BatchConsumer:
    """Applies batches from one topic for one consumer (see the module docstring)."""

    consumer: str
    db: Database
    parse: Callable[[ConsumerRecord], Any]
    handler: BatchHandler
    message_id: Callable[[Any], str | None] | None = None

    async def handle(self, records: tuple[ConsumerRecord, ...]) -> None:
        started = time.perf_counter()
        good: list[Received[Any]] = []
        bad: list[tuple[ConsumerRecord, str]] = []
        for record in records:
            try:
                good.append(Received(self.parse(record), record))
            except (ValidationError, ValueError, UnicodeDecodeError, Rejected) as exc:
                bad.append((record, describe_error(exc)))
        if records:
            CONSUMED.labels(self.consumer, records[0].topic).inc(len(records))
        try:
            await self._apply(good, bad)
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:
            if len(good) <= 1 and not bad:
                await self._apply([], [(good[0].record, describe_error(exc))] if good else [])
            else:
                log.warning("batch failed; retrying one message at a time", error=str(exc))
                for record, error in bad:
                    await self._apply([], [(record, error)])
                for item in good:
                    try:
                        await self._apply([item], [])
                    except TRANSIENT_DB_ERRORS:
                        raise
                    except Exception as item_exc:
                        await self._apply([], [(item.record, describe_error(item_exc))])
        BATCH_SECONDS.labels(self.consumer).observe(time.perf_counter() - started)

    async def _apply(
        self, good: list[Received[Any]], bad: list[tuple[ConsumerRecord, str]]
    ) -> None:
        async with self.db.uow() as uow:
            for record, error in bad:
                dead_letter(uow, self.consumer, record, error)
            if good and self.message_id is not None:
                ids = [self.message_id(item.message) for item in good]
                fresh = await uow.claim(self.consumer, [i for i in ids if i is not None])
                kept: list[Received[Any]] = []
                for item, mid in zip(good, ids, strict=True):
                    if mid is None:
                        kept.append(item)
                    elif mid in fresh:
                        fresh.discard(mid)  # a second copy in the same batch is a duplicate
                        kept.append(item)
                if len(kept) < len(good):
                    DUPLICATES.labels(self.consumer).inc(len(good) - len(kept))
                good = kept
            if good:
                await self.handler(uow, good)
            await uow.commit()


class _Broker(KafkaBroker):
    """FastStream's broker, with its subscribers started side by side.

    Starting a subscriber joins its consumer group, which waits for the group to settle:
    about half the session timeout on the embedded broker and, after a crash, until the
    dead member's session expires on Apache Kafka. One after the other, a service with
    five consumers waited five times that before its last topic was read; together, the
    waits overlap."""

    async def start(self) -> None:
        await self.connect()
        await asyncio.gather(*(sub.start() for sub in self.subscribers))
        for pub in self.publishers:
            await pub.start()
        self.running = True


def make_broker(settings: Settings, client_id: str) -> KafkaBroker:
    """The FastStream broker; per-message framework logging is kept at DEBUG (it would
    otherwise write two INFO lines per message and halve throughput)."""
    import logging

    return _Broker(
        settings.kafka_bootstrap_servers,
        logger=logging.getLogger("faststream"),
        client_id=client_id,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        enable_idempotence=settings.kafka_enable_idempotence,
        acks="all",
        log_level=logging.DEBUG,
    )


def subscribe(
    broker: KafkaBroker,
    settings: Settings,
    topic: str,
    consumer: BatchConsumer,
    group: str | None = None,
) -> None:
    """Register `consumer` as a batch subscriber of `topic` in group `consentflow.<group>`.

    Offsets are committed only after the batch's transaction commits (NACK on error seeks
    back so the batch is read again)."""

    async def _on_batch(msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        try:
            await consumer.handle(records)
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("batch not applied; will retry", consumer=consumer.consumer, error=str(exc))
            await asyncio.sleep(1.0)
            raise

    _on_batch.__name__ = f"{consumer.consumer}_{topic.replace('-', '_')}"
    broker.subscriber(
        topic,
        batch=True,
        group_id=f"consentflow.{group or consumer.consumer}",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        max_records=settings.kafka_max_batch_records,
        batch_timeout_ms=settings.kafka_batch_timeout_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        decoder=_raw_decoder,
    )(_on_batch)


async def _raw_decoder(msg: Any) -> Any:
    # The handler parses records itself so that one bad record cannot fail the batch.
    return None


def make_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    """The producer behind the outbox relay: acks from all replicas, no linger (a linger
    would delay every flush), idempotence as configured."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=0,
        max_batch_size=1024 * 1024,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )


async def ensure_topics(
    bootstrap_servers: str, partitions: int = 4, replication_factor: int = 1
) -> list[str]:
    """Create every consentflow topic that does not exist yet; returns those created.

    `flow-definitions` is compacted: the newest version of each flow is kept forever."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics.ALL_TOPICS if t not in existing]
        new = [
            NewTopic(
                t,
                num_partitions=partitions,
                replication_factor=replication_factor,
                topic_configs={"cleanup.policy": "compact"} if t in topics.COMPACTED_TOPICS else {},
            )
            for t in wanted
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return wanted
    finally:
        await admin.close()
