"""A service's Kafka edge on FastStream: one `KafkaBroker` per service, every consumer a
`batch=True` subscriber, every output topic a declared publisher.

What FastStream does here: the consumer group, the fetch loop, acknowledgement, the
AsyncAPI description of what a service consumes and produces (`faststream docs`, or
`tools.contracts_gen` through its Python API) and the OpenTelemetry spans.

What we put in at its extension points, because its defaults would lose data:

1. **parser** (`KafkaEdge._parse`): FastStream's batch parser decodes every header as
   UTF-8, so one odd header fails the whole batch. Ours keeps the records as they came
   (headers stay bytes; duplicates kept) and only builds the acknowledgeable message.
2. **decoder** (`BatchApplier.decode`): each record is read on its own, headers
   included (`shared.messaging.headers`); a bad record is set aside with its reason
   and dead-lettered alone (X1), its neighbours are applied.
3. **acknowledgement** (`AckPolicy.MANUAL`, `shared.messaging.inflight`): each member
   commits a batch's offsets only after the batch's transaction has committed, while it
   applies the next; behind a full batch it fetches and decodes the next meanwhile. A
   batch that fails is not committed, its partitions are sought back to its first
   offsets (with any batch read after it) and it is read again after a pause
   (`RETRY_PAUSE_S`), while `/readyz` says why.
4. **the fetch** (`UndecodableAware.get_msg`, the one method we override): a record
   batch aiokafka itself cannot decode (an unknown codec, a bad CRC, a header name that
   is not UTF-8) raises inside the client for a whole fetch, before any parser runs, and
   FastStream would retry it every few seconds forever. Ours reads the partitions one
   record at a time from the committed offsets: good records are handed on as a batch,
   each offset that still cannot be decoded is dead-lettered by reference (topic,
   partition, offset, error: there are no bytes to keep) and skipped (X7). It also
   reports each consumer's lag and progress to the readiness registry (X8) and does not
   sleep after an empty fetch (the fetch itself waited).

A service's main input is consumed by several members of its group in the one process
(`KAFKA_INPUT_CONSUMERS`, `GroupMember`): FastStream ignores `max_workers` for a batch
subscriber, so each member is a batch subscriber of its own with the same group, batch
applier and readiness component. Each applies its partitions' batches in order, as a
replica would; together they keep the core busy while one waits for PostgreSQL. The
group's partitions are dealt over processes first (`shared.messaging.assignment`), so
members never leave a replica without partitions while replicas ≤ partitions.

Outputs are not published through FastStream: they go through the transactional outbox
(`shared.db.outbox`), whose relay publishes committed rows in keyed batches. A publisher
is still declared per output topic, with its payload type, so the service's AsyncAPI
document says what it produces.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError, CorruptRecordException, UnsupportedCodecError
from aiokafka.structs import OffsetAndMetadata
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaAckableMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.middlewares import AckPolicy
from pydantic import BaseModel

from shared.cancellation import raise_if_cancelled
from shared.db import Database
from shared.db.errors import TRANSIENT_DB_ERRORS
from shared.db.uow import UnitOfWork
from shared.health import HEALTH, Component, Health
from shared.logging import get_logger
from shared.messaging.assignment import assignors
from shared.messaging.batches import (
    BatchApplier,
    BatchHandler,
    DecodedBatch,
    dead_letter_reference,
    json_parser,
)
from shared.messaging.clients import (
    broker_security,
    consumer_request_timeout_ms,
    fetch_wait_ms,
    group_consumer_options,
)
from shared.messaging.headers import CARRIED
from shared.messaging.inflight import InFlight, Records, first_offsets
from shared.metrics import CONSUMER_LAG, LAST_BATCH
from shared.settings import Settings

log = get_logger(__name__)

# What aiokafka raises while unpacking a fetched record batch it cannot read.
UNDECODABLE = (UnsupportedCodecError, CorruptRecordException, UnicodeDecodeError, ValueError)

RETRY_PAUSE_S = 1.0
STOP_WAIT_S = 30.0
REVOKE_WAIT_S = 10.0
LAG_EVERY_S = 1.0


def tracing_enabled() -> bool:
    """Spans are made and exported only where a collector is named (`shared.tracing`)."""
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def make_broker(
    settings: Settings, name: str, *, middlewares: tuple[Any, ...] | None = None
) -> KafkaBroker:
    """The service's FastStream broker, connected as every client of the project is
    (`shared.messaging.clients`). FastStream's own per-message logging is off (it costs
    two lines per message; the edge logs what matters). When tracing is enabled its
    OpenTelemetry middleware makes a span per batch, linked to the W3C `traceparent` of
    the records (`shared.tracing`); `middlewares` replaces that choice (tests)."""
    if middlewares is None:
        middlewares = ()
        if tracing_enabled():
            from shared.tracing import telemetry_middleware

            middlewares = (telemetry_middleware(name),)
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=broker_security(settings),
        client_id=f"consentflow-{name}",
        request_timeout_ms=consumer_request_timeout_ms(settings),
        apply_types=False,
        logger=None,
        graceful_timeout=30.0,
        allow_auto_create_topics=False,
        middlewares=middlewares,
        description=f"consentflow {name}",
    )


def carried_headers(record: ConsumerRecord) -> dict[str, str]:
    """The trace headers of a record that are readable as text (for the telemetry
    middleware's span links); anything else is left to `decode` to judge."""
    found: dict[str, str] = {}
    for name, value in record.headers or ():
        if name in CARRIED and name not in found:
            with contextlib.suppress(UnicodeDecodeError):
                found[name] = (value or b"").decode()
    return found


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the readiness registry how many partitions a member holds (X8)."""

    def __init__(self, member: GroupMember) -> None:
        self.member = member

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch in flight is finished and its offsets committed while the partitions
        # are ours, so the next holder does not apply it again; not waited for longer
        # than `REVOKE_WAIT_S` (a hung apply must not hold up the group's rebalance: the
        # batch is then read again and proven applied, X2).
        # The wait ends at the timeout; the batch's own task goes on (it is not ours to
        # cancel here), and no waiter is left behind for it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.member.inflight.drain(), REVOKE_WAIT_S)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.member.inflight.reassigned()
        self.member.holds(len(assigned))


class UndecodableAware(BatchSubscriber):
    """FastStream's batch subscriber with its fetch replaced (see the module docstring,
    point 4). Installed on a subscriber `KafkaEdge.subscribe` declared; it adds no
    state of its own (`_member` is the member of the subscription it serves)."""

    __slots__ = ()
    _member: GroupMember

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        member = self._member
        edge = member.subscription
        # Fetch ahead only behind a full batch; a batch that failed is read again.
        await member.inflight.before_fetch()
        try:
            fetched = await consumer.getmany(
                timeout_ms=self.batch_timeout_ms, max_records=self.max_records
            )
        except ConsumerStoppedError:
            raise
        except UNDECODABLE as exc:
            try:
                await member.inflight.settle()
                await member.inflight.drain()
                return await edge.step_past_undecodable(consumer, exc)
            except Exception as inner:
                edge.component.failed(f"stepping past an undecodable batch: {inner!r}")
                await asyncio.sleep(RETRY_PAUSE_S)
                return ()
        except Exception as exc:  # a Kafka error or a client bug: report, pause, retry
            raise_if_cancelled()
            edge.component.failed(f"fetch failed: {exc!r}")
            log.warning("fetch failed", consumer=edge.name, error=repr(exc))
            await asyncio.sleep(RETRY_PAUSE_S)
            return ()
        records = tuple(chain.from_iterable(fetched.values()))
        if not records and member.inflight.idle:
            edge.component.ok()
        await member.report_lag(consumer, records)
        return records


class GroupMember:
    """One consumer of a subscription's group in this process: its FastStream subscriber,
    the batch it has in flight and what it last reported (partitions held, lag). A
    subscription's members share its batch applier and its readiness component, which
    sees their sums."""

    __slots__ = (
        "_lag_at",
        "closing",
        "inflight",
        "lag",
        "partitions",
        "subscriber",
        "subscription",
    )

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.subscriber: UndecodableAware | None = None
        self.inflight = InFlight(subscription.name, subscription.handle, self._consumer)
        # Set when the service stops: a batch fetched after that is left to be read again.
        self.closing = False
        # None while joining the group.
        self.partitions: int | None = None
        self.lag = 0
        self._lag_at = 0.0

    def _consumer(self) -> AIOKafkaConsumer:
        assert self.subscriber is not None and self.subscriber.consumer is not None
        return self.subscriber.consumer

    async def take(self, batch: DecodedBatch) -> None:
        """The member's FastStream handler: wait for the batch before (read again, with
        this one, if it failed), then apply this one, while the next is fetched if this
        one is full (point 3)."""
        if not await self.inflight.settle(batch.records) or self.closing:
            return
        full = len(batch.records) >= self.subscription.settings.kafka_max_batch_records
        self.inflight.start(batch, full=full)

    async def parse(self, records: tuple[ConsumerRecord, ...]) -> KafkaAckableMessage:
        """The batch as FastStream's acknowledgeable message, acknowledged on this
        member's consumer; headers untouched: they are read record by record in
        `decode` (module docstring, point 1)."""
        assert self.subscriber is not None
        first, last = records[0], records[-1]
        batch_headers = [carried_headers(r) for r in records] if self.subscription.traced else []
        return KafkaAckableMessage(
            body=[r.value for r in records],
            headers=batch_headers[0] if batch_headers else {},
            batch_headers=batch_headers,
            message_id=f"{first.topic}-{first.partition}-{first.offset}-{last.offset}",
            raw_message=records,
            consumer=self.subscriber.consumer,
        )

    def holds(self, partitions: int) -> None:
        """The group (re)balanced: this member now holds `partitions`."""
        self.partitions = partitions
        self.subscription.report_members()

    async def report_lag(self, consumer: AIOKafkaConsumer, fetched: Records = ()) -> None:
        """Lag per partition (`consentflow_consumer_lag`) and in total for `/readyz`:
        a consumer with records waiting that applies none is stalled (X8). Counted from
        the first record not applied yet: the consumer's position, or the first record
        of the batch in flight or of the one just `fetched`, which are read but not
        applied."""
        now = time.monotonic()
        if now - self._lag_at < LAG_EVERY_S:
            return
        self._lag_at = now
        total = 0
        name = self.subscription.name
        assignment = consumer.assignment()
        unapplied = self.inflight.unapplied()
        for tp, offset in first_offsets(fetched).items():
            unapplied[tp] = min(offset, unapplied.get(tp, offset))
        for tp in assignment:
            high = consumer.highwater(tp)
            if high is None:
                continue
            position: int | None = None
            with contextlib.suppress(Exception):
                position = await consumer.position(tp)
            if position is None:
                continue
            lag = max(0, high - min(position, unapplied.get(tp, position)))
            total += lag
            CONSUMER_LAG.labels(name, tp.topic, str(tp.partition)).set(lag)
        self.lag = total
        self.holds(len(assignment))


class Subscription:
    """One topic in one consumer group: its members (the FastStream subscribers of the
    group in this process, one unless it is a main input), the batch they apply and
    the readiness component they report into."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        payload: type[BaseModel],
        batch: BatchApplier,
        component: Component,
        *,
        side: bool = False,
    ) -> None:
        self.settings = settings
        self.topic = topic
        # A side input (not the service's main one) fetches and polls with the longer
        # `KAFKA_SIDE_FETCH_MAX_WAIT_MS` (`clients.fetch_wait_ms`).
        self.side = side
        # What one record of the topic carries (its handler takes a batch of these).
        self.payload = payload
        self.batch = batch
        self.name = batch.name
        self.component = component
        self.members: list[GroupMember] = []
        # The telemetry middleware reads the trace context from the message's headers.
        self.traced = False

    @property
    def subscriber(self) -> UndecodableAware | None:
        """The first member's FastStream subscriber (they all share its group)."""
        return self.members[0].subscriber if self.members else None

    def report_members(self) -> None:
        """The readiness component holds the members' sums: partitions once every
        member has joined, and lag."""
        held = [m.partitions for m in self.members]
        if None not in held:
            self.component.assigned(sum(p for p in held if p is not None))
        self.component.lag = sum(m.lag for m in self.members)

    # --- FastStream's extension points (the parser is each member's) -------------------

    async def decode(self, message: KafkaAckableMessage) -> DecodedBatch:
        """Each record on its own (point 2)."""
        return self.batch.decode(message.raw_message)

    async def handle(self, batch: DecodedBatch) -> None:
        """Apply the batch; on failure report, pause and raise, so that the batch is
        not committed and is read again (point 3)."""
        try:
            await self.batch.apply(batch)
        except Exception as exc:
            raise_if_cancelled()
            transient = isinstance(exc, TRANSIENT_DB_ERRORS)
            self.component.failed(f"batch not applied: {type(exc).__name__}: {exc}")
            log.warning(
                "batch not applied; will retry",
                consumer=self.name,
                error=str(exc),
                transient=transient,
            )
            await asyncio.sleep(RETRY_PAUSE_S)
            raise
        self.component.applied()
        LAST_BATCH.labels(self.name).set(time.time())

    # --- X7: record batches the client cannot decode -----------------------------------

    async def _next_offset(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        # Every applied batch is committed before the next fetch: the committed offset
        # is where this consumer's work stands.
        committed = await consumer.committed(tp)
        if committed is None:
            committed = (await consumer.beginning_offsets([tp]))[tp]
        return int(committed)

    async def step_past_undecodable(
        self, consumer: AIOKafkaConsumer, first_error: BaseException
    ) -> tuple[ConsumerRecord, ...]:
        """Read one record at a time from the committed offsets; return the first good
        records (they are applied and acknowledged as a batch), dead-letter by reference
        each offset that cannot be decoded (module docstring, point 4)."""
        log.warning(
            "undecodable record batch; reading record by record",
            consumer=self.name,
            error=repr(first_error),
        )
        parts = sorted(consumer.assignment())
        for tp in parts:
            consumer.seek(tp, await self._next_offset(consumer, tp))
        wait_ms = max(fetch_wait_ms(self.settings, side=self.side) * 4, 500)
        for tp in parts:
            for _ in range(self.settings.kafka_max_batch_records):
                try:
                    got = await consumer.getmany(tp, timeout_ms=wait_ms, max_records=1)
                except UNDECODABLE as exc:
                    offset = await self._next_offset(consumer, tp)
                    error = f"undecodable record batch: {type(exc).__name__}: {exc}"
                    await dead_letter_reference(self.batch, self.topic, tp.partition, offset, error)
                    await consumer.commit({tp: OffsetAndMetadata(offset + 1, "")})
                    consumer.seek(tp, offset + 1)
                    continue
                if records := tuple(got.get(tp, ())):
                    return records
                break
        return ()


def _handler(member: GroupMember, topic: str, payload: type[BaseModel]) -> Callable[..., Any]:
    """The FastStream handler of `member`, annotated with what a record of `topic`
    carries (the AsyncAPI document shows it)."""

    async def apply(batch: list[Any]) -> None:
        await member.take(batch)  # type: ignore[arg-type]

    apply.__annotations__ = {"batch": list[payload], "return": None}  # type: ignore[valid-type]
    apply.__name__ = f"on_{topic.replace('-', '_')}"
    return apply


class KafkaEdge:
    """A service's broker and the subscriptions and publishers declared on it."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        db: Database,
        health: Health = HEALTH,
        *,
        middlewares: tuple[Any, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.db = db
        self.health = health
        self.broker = make_broker(settings, name, middlewares=middlewares)
        self.subscriptions: list[Subscription] = []
        # Every group's partitions are dealt over processes first (`assignment`).
        self.assignors = assignors()

    def subscribe(
        self,
        topic: str,
        payload: type[BaseModel],
        handler: BatchHandler,
        *,
        consumer: str | None = None,
        message_id: Callable[[Any], str | None] | None = None,
        parse: Callable[[ConsumerRecord], Any] | None = None,
        description: str | None = None,
        work: Callable[[UnitOfWork], Any] | None = None,
        main_input: bool = False,
        members: int = 1,
    ) -> BatchApplier:
        """Declare a batch subscriber of `topic` (consumer group `consentflow.<consumer>`
        with `KAFKA_GROUP_PREFIX` before it; the inbox dedupes on `message_id`) whose
        records carry `payload` (parsed by `parse`, JSON by default). `handler` is a use
        case, `handler(batch, work)`, with `work` made by `work` from the batch's
        transaction (the transaction itself by default). The service's `main_input` is
        consumed by `KAFKA_INPUT_CONSUMERS` members of its group in this process
        (`attach`; unset, by `members`: the service's own choice) fetching with
        `KAFKA_FETCH_MAX_WAIT_MS`; any other topic is a side input, read by one member
        with `KAFKA_SIDE_FETCH_MAX_WAIT_MS`."""
        batch = BatchApplier(
            name=consumer or f"{self.name}.{topic}",
            db=self.db,
            parse=parse or json_parser(payload),
            handler=handler,
            message_id=message_id,
            topic=topic,
            **({"work": work} if work is not None else {}),
        )
        description = description or (handler.__doc__ or "").strip().split("\n\n")[0]
        consumers = (self.settings.kafka_input_consumers or members) if main_input else 1
        self.attach(
            topic,
            batch,
            payload,
            description=description,
            consumers=consumers,
            side=not main_input,
        )
        return batch

    def attach(
        self,
        topic: str,
        batch: BatchApplier,
        payload: type[BaseModel],
        *,
        group: str | None = None,
        description: str | None = None,
        consumers: int = 1,
        side: bool = False,
    ) -> Subscription:
        """Declare the FastStream subscribers that hand `topic`'s batches to `batch`:
        `consumers` members of consumer group `group` (by default `batch.name`). Each
        member applies the partitions the group gives it in order, one batch at a time,
        as a replica would; several overlap one's database waits with another's work on
        the one event loop. The AsyncAPI document shows the first.

        A `side` input's members fetch with `KAFKA_SIDE_FETCH_MAX_WAIT_MS` and wait as
        long for a batch: a poll returns as soon as records come, so the longer wait
        costs latency only where the broker holds fetches (the embedded one), and it
        saves an idle consumer most of its fetches and polls there."""
        settings = self.settings
        component = self.health.register(
            batch.name,
            kind="consumer",
            stall_s=settings.kafka_stall_s,
            grace_s=settings.kafka_partition_grace_s,
        )
        edge = Subscription(settings, topic, payload, batch, component, side=side)
        poll_ms = settings.kafka_batch_timeout_ms
        if side:
            poll_ms = max(poll_ms, fetch_wait_ms(settings, side=True))
        edge.traced = bool(self.broker.middlewares)
        for index in range(consumers):
            member = GroupMember(edge)
            subscriber = self.broker.subscriber(
                settings.kafka_topic(topic),
                batch=True,
                group_id=settings.kafka_group(group or batch.name),
                max_records=settings.kafka_max_batch_records,
                batch_timeout_ms=poll_ms,
                **group_consumer_options(settings, side=side),
                listener=_Assignment(member),
                partition_assignment_strategy=self.assignors,
                ack_policy=AckPolicy.MANUAL,
                parser=member.parse,
                decoder=edge.decode,
                title=topic,
                description=description,
                include_in_schema=index == 0,
            )
            # The one override (module docstring, point 4): same slots, one method more.
            subscriber.__class__ = UndecodableAware
            subscriber._member = member  # type: ignore[attr-defined]
            member.subscriber = subscriber  # type: ignore[assignment]
            edge.members.append(member)
            subscriber(_handler(member, topic, payload))
        self.subscriptions.append(edge)
        return edge

    def publishes(self, topic: str, payload: type[BaseModel], description: str = "") -> None:
        """Declare that this service produces `payload` on `topic` (through its outbox).
        Titled apart from a subscriber of the same topic: FastStream keys its document's
        endpoints by title and would keep only one of the two."""
        self.broker.publisher(
            self.settings.kafka_topic(topic),
            schema=payload,
            title=f"{topic}:send",
            description=description or (payload.__doc__ or "").strip().split("\n\n")[0],
        )

    async def start(self) -> None:
        """Connect and join every consumer group side by side: a join waits for the
        group to settle (half the session timeout on the embedded broker, a dead
        member's session after a crash on Apache Kafka); FastStream's `start()` joins
        them one after the other, and those waits would add up."""
        broker = self.broker
        await broker.connect()
        await asyncio.gather(
            *(m.subscriber.start() for s in self.subscriptions for m in s.members if m.subscriber)
        )
        broker.running = True

    async def stop(self) -> None:
        """Stop consuming: each member's batch in flight is finished and its offsets
        committed (for at most `STOP_WAIT_S`; one still not done is cancelled and read
        again), then the clients are closed."""
        members = [m for s in self.subscriptions for m in s.members]
        for member in members:
            member.closing = True
        if members:
            _, late = await asyncio.wait(
                [asyncio.ensure_future(m.inflight.drain()) for m in members], timeout=STOP_WAIT_S
            )
            for member in members:
                member.inflight.cancel()
            for waiting in late:
                waiting.cancel()
        await self.broker.stop()

    @property
    def consumers(self) -> list[str]:
        return [s.name for s in self.subscriptions]
