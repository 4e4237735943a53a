"""A member applies a full batch while it fetches the next, against the real broker and
PostgreSQL (`shared.messaging.inflight`): offsets are committed only after each
batch's transaction, a failed batch is read again together with the batch fetched
behind it, and a stop commits the batch in flight (X2)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.db import Database
from shared.health import Health
from shared.messaging.batches import BatchApplier, json_parser
from shared.messaging.edge import KafkaEdge
from tests.component.shared.conftest import create_topic, settings_for
from tests.component.shared.test_kafka_edge import Ping, _applied, _async, _insert, ping
from tests.conftest import eventually

BATCH = 100


async def _produce(stack, topic: str, keys: list[str], per_key: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    try:
        for n in range(per_key):
            for key in keys:
                await producer.send(topic, ping(f"{key}-{n}", n), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _committed(stack, group: str, topic: str, partitions: int) -> list[int | None]:
    """The group's committed offset of each partition of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap, group_id=group)
    await consumer.start()
    try:
        return [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        await consumer.stop()


def _in_order(applied: list[tuple[str, int]], keys: list[str], per_key: int) -> None:
    """Each key's records were applied once each, in the order they were produced."""
    assert len(applied) == len(keys) * per_key
    for key in keys:
        assert [n for k, n in applied if k == key] == list(range(per_key))


async def test_x2_a_full_batch_is_applied_while_the_next_is_fetched_in_order(
    stack, db: Database
) -> None:
    """Behind a full batch the member fetches the next one before the first is applied
    (the point of it); still one batch at a time, each key in order, and the offsets
    committed end where the records end."""
    topic = f"ahead-{uuid.uuid4().hex[:6]}"
    settings = settings_for(stack).model_copy(update={"kafka_max_batch_records": BATCH})
    await create_topic(settings, topic, partitions=2)
    keys = [f"person-{k}" for k in range(8)]
    await _produce(stack, topic, keys, per_key=75)  # 600 records: full batches of 100
    edge = KafkaEdge(settings, "test", db, Health())
    applied: list[tuple[str, int]] = []
    offsets: list[tuple[int, int]] = []
    fetched_ahead: list[bool] = []
    in_flight = {"now": 0, "most": 0}

    async def handler(items, uow) -> None:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            consumer = subscription.members[0].subscriber.consumer
            ends = {}
            for i in items:
                tp = TopicPartition(i.record.topic, i.record.partition)
                ends[tp] = max(ends.get(tp, 0), i.record.offset + 1)

            async def moved_on() -> bool | None:
                # The member's position passed this batch: it fetched the next one.
                for tp, end in ends.items():
                    if await consumer.position(tp) > end:
                        return True
                return None

            ahead = False
            with contextlib.suppress(AssertionError):  # not ahead: the last batch
                ahead = bool(await eventually(moved_on, timeout_s=2, interval_s=0.01))
            fetched_ahead.append(ahead)
            await _insert(items, uow)
            applied.extend((i.record.key.decode(), i.message.n) for i in items)
            offsets.extend((i.record.partition, i.record.offset) for i in items)
        finally:
            in_flight["now"] -= 1

    batch = BatchApplier("ahead", db, json_parser(Ping), handler, topic=topic)
    subscription = edge.attach(topic, batch, Ping, group=f"test.{topic}")
    await edge.start()
    try:
        assert len(await eventually(lambda: _applied(db, 600), timeout_s=60)) == 600
    finally:
        await edge.stop()
    _in_order(applied, keys, per_key=75)
    assert in_flight["most"] == 1
    # Every full batch but the last had the next fetched while it was applied.
    assert sum(fetched_ahead) >= 3, fetched_ahead
    # One past the last record applied of each partition.
    ends = [max(o for p, o in offsets if p == partition) + 1 for partition in (0, 1)]
    assert sum(ends) == 600
    assert await _committed(stack, f"consentflow.test.{topic}", topic, 2) == ends


async def test_x2_a_failed_batch_is_read_again_with_the_one_fetched_behind_it(
    stack, db: Database
) -> None:
    """The second full batch fails once while the third is already fetched: both are read
    again, nothing is skipped or applied twice, and the offsets end at the end."""
    topic = f"again-{uuid.uuid4().hex[:6]}"
    settings = settings_for(stack).model_copy(update={"kafka_max_batch_records": BATCH})
    await create_topic(settings, topic, partitions=1)
    keys = [f"person-{k}" for k in range(5)]
    await _produce(stack, topic, keys, per_key=80)  # 400 records, one partition
    applied: list[tuple[str, int]] = []
    failures = {"left": 1}
    batches = {"seen": 0}

    async def handler(items, uow) -> None:
        batches["seen"] += 1
        if batches["seen"] == 2 and failures["left"]:
            failures["left"] -= 1
            raise ConnectionResetError("database went away")
        await _insert(items, uow)
        applied.extend((i.record.key.decode(), i.message.n) for i in items)

    edge = KafkaEdge(settings, "test", db, Health())
    batch = BatchApplier("again", db, json_parser(Ping), handler, topic=topic)
    edge.attach(topic, batch, Ping, group=f"test.{topic}")
    await edge.start()
    try:
        assert len(await eventually(lambda: _applied(db, 400), timeout_s=60)) == 400
    finally:
        await edge.stop()
    assert failures["left"] == 0
    _in_order(applied, keys, per_key=80)
    assert await _committed(stack, f"consentflow.test.{topic}", topic, 1) == [400]


async def test_x2_a_stop_commits_the_batch_in_flight_and_applies_nothing_after(
    stack, db: Database
) -> None:
    """Stopping while a full batch is applied: the batch finishes and its offsets are
    committed; the batch fetched behind it is left to be read again."""
    topic = f"stop-{uuid.uuid4().hex[:6]}"
    settings = settings_for(stack).model_copy(update={"kafka_max_batch_records": BATCH})
    await create_topic(settings, topic, partitions=1)
    await _produce(stack, topic, ["only"], per_key=300)
    holding = asyncio.Event()
    release = asyncio.Event()
    sizes: list[int] = []

    async def handler(items, uow) -> None:
        holding.set()
        await release.wait()
        await _insert(items, uow)
        sizes.append(len(items))

    edge = KafkaEdge(settings, "test", db, Health())
    batch = BatchApplier("stop", db, json_parser(Ping), handler, topic=topic)
    edge.attach(topic, batch, Ping, group=f"test.{topic}")
    await edge.start()
    await asyncio.wait_for(holding.wait(), 30)
    stopping = asyncio.create_task(edge.stop())
    await eventually(lambda: _async(all(m.closing for s in edge.subscriptions for m in s.members)))
    release.set()
    await asyncio.wait_for(stopping, 60)
    assert sizes == [BATCH]
    assert await _committed(stack, f"consentflow.test.{topic}", topic, 1) == [BATCH]


async def test_x8_a_hung_batch_with_the_next_read_ahead_still_turns_stalled(
    stack, db: Database
) -> None:
    """The whole backlog is one full batch: once it is read the consumer's position is at
    the end, and the member goes on fetching while the apply hangs without raising. The
    records read but not applied still count as waiting, so the consumer turns
    stalled."""
    topic = f"hung-{uuid.uuid4().hex[:6]}"
    settings = settings_for(stack).model_copy(
        update={"kafka_max_batch_records": BATCH, "kafka_stall_s": 2.0}
    )
    await create_topic(settings, topic, partitions=1)
    await _produce(stack, topic, ["only"], per_key=BATCH)
    release = asyncio.Event()

    async def handler(items, uow) -> None:
        await release.wait()
        await _insert(items, uow)

    health = Health()
    edge = KafkaEdge(settings, "test", db, health)
    batch = BatchApplier("hung", db, json_parser(Ping), handler, topic=topic)
    subscription = edge.attach(topic, batch, Ping, group=f"test.{topic}")
    await edge.start()
    try:
        consumer = subscription.members[0].subscriber.consumer
        tp = TopicPartition(topic, 0)

        async def read_to_the_end() -> bool:
            return await consumer.position(tp) == BATCH

        await eventually(read_to_the_end)
        component = health.components["hung"]
        reason = await eventually(lambda: _async(component.problem()), timeout_s=15)
        assert reason.startswith("stalled") and "records waiting" in reason
        release.set()
        assert len(await eventually(lambda: _applied(db, BATCH))) == BATCH
        await eventually(lambda: _async(component.problem() is None), timeout_s=15)
    finally:
        release.set()
        await edge.stop()
