"""Kafka as it is in the field, against the real broker: every codec, a record batch no
client can decode, odd headers, and the consumer's readiness (X1, X2, X7, X8)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c
from prometheus_client import REGISTRY
from pydantic import BaseModel

from shared.db import Database
from shared.db.outbox import OutboxRelay
from shared.health import Health
from shared.messaging.batches import BatchApplier, json_parser
from shared.messaging.clients import make_producer
from tests.component.shared.conftest import consuming, create_topic, settings_for
from tests.conftest import Kafka, eventually


class Ping(BaseModel):
    id: str
    n: int


def ping(id_: str, n: int = 1) -> bytes:
    return f'{{"id": "{id_}", "n": {n}}}'.encode()


async def _applied(db: Database, count: int) -> list[str] | None:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id FROM applied ORDER BY id")
    return [r["id"] for r in rows] if len(rows) >= count else None


async def _insert(items, uow) -> None:
    await uow.conn.executemany(
        "INSERT INTO applied (id, n) VALUES ($1, $2)", [(i.message.id, i.message.n) for i in items]
    )


def corrupt_batch(values: list[bytes]) -> bytes:
    """A v2 record batch whose CRC does not match: the broker stores it, no client can
    read it (aiokafka raises CorruptRecordException on every fetch of it)."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i, value in enumerate(values):
        builder.append(i, timestamp=int(time.time() * 1000), key=b"k", value=value, headers=[])
    raw = bytearray(builder.build())
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])) ^ 0xFFFF)
    return bytes(raw)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_x7_consumer_reads_every_standard_codec(stack, db: Database, codec: str) -> None:
    topic = f"codec-{codec}-{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, compression_type=codec)
    await producer.start()
    batch = BatchApplier("codecs", db, json_parser(Ping), _insert, topic=topic)
    try:
        for i in range(20):
            await producer.send(topic, ping(f"{codec}-{i}", i), key=b"k")
        await producer.flush()
        async with consuming(settings_for(stack), topic, batch):
            assert len(await eventually(lambda: _applied(db, 20))) == 20
    finally:
        await producer.stop()


async def test_x7_outbox_producer_compresses_as_configured(stack, kafka: Kafka) -> None:
    """KAFKA_COMPRESSION_TYPE reaches the producer, and what it writes reads back."""
    topic = f"compressed-{uuid.uuid4().hex[:6]}"
    settings = settings_for(stack).model_copy(update={"kafka_compression_type": "zstd"})
    producer = make_producer(settings, "test-zstd")
    assert producer._compression_type == "zstd"
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"z": 1}', key=b"k")
    finally:
        await producer.stop()
    assert await eventually(lambda: kafka.read_all(topic)) == [("k", {"z": 1})]


async def test_x7_undecodable_batch_is_dead_lettered_by_reference_and_consumer_moves_on(
    stack, db: Database, kafka: Kafka
) -> None:
    topic = f"corrupt-{uuid.uuid4().hex[:6]}"
    settings = settings_for(stack)
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    relay_producer = make_producer(settings, "test-relay")
    await relay_producer.start()
    relay = OutboxRelay(db.pool, relay_producer, db.schema)
    health = Health()
    try:
        await producer.send_and_wait(topic, ping("before"), key=b"k", partition=0)
        node = producer.client.cluster.leader_for_partition(TopicPartition(topic, 0))
        request = ProduceRequest(
            transactional_id=None,
            required_acks=-1,
            timeout=10_000,
            topics=[(topic, [(0, corrupt_batch([ping("x1"), ping("x2"), ping("x3")]))])],
        )
        await producer.client.send(node, request)
        await producer.send_and_wait(topic, ping("after"), key=b"k", partition=0)
        batch = BatchApplier("corrupt", db, json_parser(Ping), _insert, topic=topic)
        async with consuming(settings, topic, batch, health):
            assert await eventually(lambda: _applied(db, 2), timeout_s=30) == ["after", "before"]
        await relay.publish_pending()

        async def letters():
            got = [v for _, v in await kafka.read_all(f"{topic}.dlq")]
            return got if len(got) >= 3 else None

        dead = sorted(await eventually(letters), key=lambda d: d["source_offset"])
        assert [(d["source_partition"], d["source_offset"]) for d in dead] == [
            (0, 1),
            (0, 2),
            (0, 3),
        ]
        assert all("CorruptRecordException" in d["error"] for d in dead)
        assert all(d["original"] == "" and d["source_topic"] == topic for d in dead)
        assert health.components["corrupt"].problem() is None
    finally:
        await producer.stop()
        await relay_producer.stop()


def _bad_header_count(reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "consentflow_bad_headers_total",
            {"consumer": "headers", "topic": _bad_header_count.topic, "reason": reason},  # type: ignore[attr-defined]
        )
        or 0.0
    )


async def test_x2_a_record_with_odd_headers_costs_only_that_record(
    stack, db: Database, kafka: Kafka
) -> None:
    """Non-UTF-8, duplicated and huge headers: each such record is dead-lettered with the
    reason, its neighbours in the same batch are applied, and /metrics counts them."""
    topic = f"headers-{uuid.uuid4().hex[:6]}"
    _bad_header_count.topic = topic  # type: ignore[attr-defined]
    settings = settings_for(stack)
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    relay_producer = make_producer(settings, "test-relay")
    await relay_producer.start()
    relay = OutboxRelay(db.pool, relay_producer, db.schema)
    sent = [
        (ping("good-1"), [("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")]),
        (ping("junk-traceparent"), [("traceparent", b"\xff\xfe\x00junk")]),
        (ping("good-2"), [("x-binary-of-someone-else", b"\xff\xfe")]),
        (ping("twice"), [("correlation_id", b"a"), ("correlation_id", b"b")]),
        (ping("huge"), [("x-big", b"x" * 20_000)]),
        (ping("good-3"), [("traceparent", b"not-a-w3c-value")]),
    ]
    try:
        for value, headers in sent:
            await producer.send(topic, value, key=b"same", partition=0, headers=headers)
        await producer.flush()
        batch = BatchApplier("headers", db, json_parser(Ping), _insert, topic=topic)
        async with consuming(settings, topic, batch):
            assert await eventually(lambda: _applied(db, 3)) == ["good-1", "good-2", "good-3"]
        await relay.publish_pending()

        async def letters():
            got = [v for _, v in await kafka.read_all(f"{topic}.dlq")]
            return got if len(got) >= 3 else None

        dead = {base64.b64decode(d["original"]): d["error"] for d in await eventually(letters)}
        assert "not UTF-8" in dead[ping("junk-traceparent")]
        assert "more than once" in dead[ping("twice")]
        assert "bytes of headers" in dead[ping("huge")]
        assert _bad_header_count("not_utf8") == 1
        assert _bad_header_count("duplicated") == 1
        assert _bad_header_count("too_large") == 1
        assert _bad_header_count("traceparent_ignored") == 1
    finally:
        await producer.stop()
        await relay_producer.stop()


async def test_x8_consumer_reports_errors_within_seconds_and_recovers(stack, db: Database) -> None:
    topic = f"health-{uuid.uuid4().hex[:6]}"
    broken = {"now": True}

    async def handler(items, uow) -> None:
        if broken["now"]:
            raise ConnectionResetError("database went away")
        await _insert(items, uow)

    health = Health()
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    batch = BatchApplier("health", db, json_parser(Ping), handler, topic=topic)
    try:
        async with consuming(settings_for(stack), topic, batch, health):
            component = health.components["health"]
            assert component.partitions is not None  # joined before start() returned
            started = time.monotonic()
            await producer.send_and_wait(topic, ping("h"), key=b"k")
            reason = await eventually(lambda: _async(component.problem()), timeout_s=10)
            assert "erroring" in reason and "database went away" in reason
            assert time.monotonic() - started < 10
            broken["now"] = False
            await eventually(lambda: _async(component.problem() is None), timeout_s=10)
            assert await _applied(db, 1) == ["h"]
    finally:
        await producer.stop()


async def _async(value):
    return value


async def test_x8_x2_members_of_one_group_share_its_partitions_and_keep_each_in_order(
    stack, db: Database
) -> None:
    """A main input is consumed by several members of its group in one process: each
    holds its own partitions and applies their batches in order, while another's batch
    is in flight (overlap is the point); every record is applied once, and readiness
    counts the group's partitions, so members beyond the partitions do not make the
    service unready (X8)."""
    topic = f"members-{uuid.uuid4().hex[:6]}"
    settings = settings_for(stack).model_copy(update={"kafka_partition_grace_s": 0.01})
    await create_topic(settings, topic, partitions=4)
    applied: list[tuple[str, int]] = []
    in_flight = {"now": 0, "most": 0}
    overlapped = asyncio.Event()

    async def handler(items, uow) -> None:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        if in_flight["most"] >= 2:
            overlapped.set()
        try:
            # Hold the first batches until a second member's batch is in flight too
            # (bounded: with one member at a time this waits out the 5 s).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(overlapped.wait(), 5)
            await _insert(items, uow)
            applied.extend((i.record.key.decode(), i.message.n) for i in items)
        finally:
            in_flight["now"] -= 1

    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    health = Health()
    keys = [f"person-{k}" for k in range(12)]
    try:
        for n in range(25):
            for key in keys:
                await producer.send(topic, ping(f"{key}-{n}", n), key=key.encode())
        await producer.flush()
        batch = BatchApplier("members", db, json_parser(Ping), handler, topic=topic)
        async with consuming(settings, topic, batch, health, consumers=6) as subscription:
            assert len(await eventually(lambda: _applied(db, 300))) == 300
            held = [m.partitions for m in subscription.members]
            assert sum(held) == 4 and len(held) == 6
            component = health.components["members"]
            assert component.partitions == 4
            assert component.problem() is None
    finally:
        await producer.stop()
    assert in_flight["most"] >= 2
    assert len(applied) == 300
    for key in keys:
        assert [n for k, n in applied if k == key] == list(range(25))


async def test_x8_two_replicas_of_four_members_each_hold_some_of_two_partitions(
    stack, db: Database
) -> None:
    """Replicas ≤ partitions, members > partitions: the partitions are dealt over the
    processes first, so neither replica is left idle and unready (round-robin over
    random member ids leaves one without in 3 orderings of 7)."""
    topic = f"replicas-{uuid.uuid4().hex[:6]}"
    settings = settings_for(stack)
    await create_topic(settings, topic, partitions=2)
    batch = BatchApplier("replicas", db, json_parser(Ping), _insert, topic=topic)
    health_a, health_b = Health(), Health()
    async with (
        consuming(settings, topic, batch, health_a, consumers=4),
        consuming(settings, topic, batch, health_b, consumers=4),
    ):

        async def settled():
            held = [h.components["replicas"].partitions for h in (health_a, health_b)]
            return held if held == [1, 1] else None

        assert await eventually(settled, timeout_s=30) == [1, 1]
