"""The shared messaging machinery against the real broker and PostgreSQL: the batch
consumer's dead-lettering (X1), the inbox and the transactional outbox (X2)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from pydantic import BaseModel

from shared.contracts.topics import dlq
from shared.db import Database, wakes
from shared.db.outbox import OutboxRelay
from shared.db.retention import prune
from shared.db.uow import UnitOfWork, notify_channel
from shared.messaging.batches import BatchApplier, json_parser
from shared.messaging.clients import make_producer
from tests.component.shared.conftest import consuming, create_topic, settings_for
from tests.conftest import Kafka, eventually


class Ping(BaseModel):
    id: str
    n: int


async def test_x2_outbox_publishes_only_committed_rows(stack, db: Database, kafka: Kafka) -> None:
    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    async with db.uow() as uow:
        uow.publish(topic, "k1", b'{"rolled": "back"}')
        # no commit: leaving the block rolls back
    async with db.uow() as uow:
        uow.publish(topic, "k2", b'{"committed": true}')
        await uow.commit()
    producer = make_producer(settings_for(stack), "test-outbox")
    await producer.start()
    try:
        relay = OutboxRelay(db.pool, producer, db.schema)
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 0  # marked done only after the broker's ack
    finally:
        await producer.stop()
    got = await eventually(lambda: kafka.read_all(topic))
    assert got == [("k2", {"committed": True})]
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def test_x2_outbox_keeps_commit_order_across_relay_batches(
    stack, db: Database, kafka: Kafka
) -> None:
    topic = f"outbox-order-{uuid.uuid4().hex[:8]}"
    # three transactions of 7, 12 and 6 rows, relayed ten rows at a time
    for numbers in (range(0, 7), range(7, 19), range(19, 25)):
        async with db.uow() as uow:
            for n in numbers:
                uow.publish(topic, "one-key", json.dumps({"n": n}).encode())
            await uow.commit()
    producer = make_producer(settings_for(stack), "test-outbox-order")
    await producer.start()
    try:
        relay = OutboxRelay(db.pool, producer, db.schema, batch_size=10)
        assert [await relay.publish_pending() for _ in range(4)] == [10, 10, 5, 0]
    finally:
        await producer.stop()

    async def all_of_them() -> list[tuple[str | None, dict | None]]:
        got = await kafka.read_all(topic)
        return got if len(got) == 25 else []

    got = await eventually(all_of_them)
    assert [v["n"] for _, v in got if v] == list(range(25))
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def _records(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord]:
    """The first `count` records of `topic`, from every partition, in each one's order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30
        while len(out) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += records
        return out
    finally:
        await consumer.stop()


async def test_x2_outbox_sends_each_key_to_its_partition_in_commit_order(
    stack, db: Database
) -> None:
    """The relay sends rows as a record batch per topic and partition. Each keyed row
    lands on the partition the producer's default partitioner picks for its key (the
    partition `send` used), a key's rows in the order they were committed; rows
    without a key go too; a row the producer refuses (over its request limit) is
    dead-lettered with the reason and costs none of the others (X2)."""
    settings = settings_for(stack)
    topics_ = [f"outbox-parts-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for t in topics_:
        await create_topic(settings, t, partitions=4)
    big = b'{"big": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    n = 0
    for _ in range(3):  # three transactions, interleaving keys and topics
        async with db.uow() as uow:
            for _ in range(40):
                key = None if n % 13 == 0 else f"k{n % 9}"
                uow.publish(topics_[n % 2], key, json.dumps({"n": n}).encode(), {"t": str(n)})
                n += 1
            await uow.commit()
        if n == 80:  # over the producer's limit: `publish` refuses such a row, but a
            # row written before that limit existed is in the outbox all the same
            async with db.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO outbox (topic, key, value) VALUES ($1, 'k5', $2)", topics_[0], big
                )
    producer = make_producer(settings, "test-outbox-parts")
    await producer.start()
    try:
        relay = OutboxRelay(db.pool, producer, db.schema, batch_size=1000)
        assert await relay.publish_pending() == n + 1
    finally:
        await producer.stop()
    for i, topic in enumerate(topics_):
        sent = [m for m in range(n) if m % 2 == i]
        got = await _records(stack.broker.bootstrap, topic, len(sent))
        assert sorted(json.loads(r.value)["n"] for r in got) == sent
        for r in got:
            number = json.loads(r.value)["n"]
            assert dict(r.headers) == {"t": str(number).encode()}
            assert abs(r.timestamp / 1000 - time.time()) < 300  # stamped when sent
            if r.key is not None:
                assert r.partition == DefaultPartitioner()(r.key, [0, 1, 2, 3], [0, 1, 2, 3])
        by_key: dict[bytes, list[int]] = {}
        for r in sorted(got, key=lambda r: (r.partition, r.offset)):
            if r.key is not None:
                by_key.setdefault(r.key, []).append(json.loads(r.value)["n"])
        assert by_key and all(ns == sorted(ns) for ns in by_key.values())
    letters = await _records(stack.broker.bootstrap, dlq(topics_[0]), 1)
    assert len(letters) == 1 and letters[0].key == b"k5"
    letter = json.loads(letters[0].value)
    assert letter["original_size"] == len(big)
    assert "refused" in letter["error"] and "TooLarge" in letter["error"]
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def test_x2_a_batch_the_broker_refuses_is_sent_again_row_by_row(stack, db: Database) -> None:
    """A record batch the broker refuses for good is sent again one row at a time: only
    the row it refuses on its own is dead-lettered, with the reason, and every other row
    of the batch reaches its partition in commit order (X2).

    The embedded broker refuses nothing for good (it took a 20 MB record on a topic
    created with `max.message.bytes` 1,000), so its refusal is played at the real
    producer's edge: every record batch to the topic comes back refused, as does the one
    row keyed `poison` sent alone; the rest goes to the broker."""
    settings = settings_for(stack)
    topic = f"outbox-refused-{uuid.uuid4().hex[:8]}"
    await create_topic(settings, topic, partitions=2)
    async with db.uow() as uow:
        for n in range(30):
            key = "poison" if n == 17 else f"k{n % 5}"
            uow.publish(topic, key, json.dumps({"n": n}).encode())
        await uow.commit()
    producer = make_producer(settings, "test-outbox-refused")
    await producer.start()
    send_batch, send = producer.send_batch, producer.send
    batches: list[int] = []

    def refused() -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_exception(MessageSizeTooLargeError("refused by the broker"))
        return future

    async def refusing_batch(batch, to: str, *, partition: int):  # type: ignore[no-untyped-def]
        if to == topic:
            batches.append(partition)
            return refused()
        return await send_batch(batch, to, partition=partition)

    async def refusing_send(to: str, value=None, key=None, **options):  # type: ignore[no-untyped-def]
        if to == topic and key == b"poison":
            return refused()
        return await send(to, value=value, key=key, **options)

    producer.send_batch, producer.send = refusing_batch, refusing_send  # type: ignore[method-assign]
    try:
        relay = OutboxRelay(db.pool, producer, db.schema, batch_size=1000)
        assert await relay.publish_pending() == 30
    finally:
        await producer.stop()
    assert sorted(batches) == [0, 1]  # both partitions' batches were tried, and refused
    got = await _records(stack.broker.bootstrap, topic, 29)
    assert sorted(json.loads(r.value)["n"] for r in got) == [n for n in range(30) if n != 17]
    by_key: dict[bytes, list[int]] = {}
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        assert r.partition == DefaultPartitioner()(r.key, [0, 1], [0, 1])
        by_key.setdefault(r.key, []).append(json.loads(r.value)["n"])
    assert len(by_key) == 5 and all(ns == sorted(ns) for ns in by_key.values())
    letters = await _records(stack.broker.bootstrap, dlq(topic), 1)
    assert [letter.key for letter in letters] == [b"poison"]
    letter = json.loads(letters[0].value)
    assert "refused" in letter["error"] and "MessageSizeTooLarge" in letter["error"]
    assert json.loads(base64.b64decode(letter["original"])) == {"n": 17}
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def test_x2_inbox_claims_each_message_once(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.claim("c", ["m1", "m2", "m2"]) == {"m1", "m2"}
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.claim("c", ["m1", "m3"]) == {"m3"}
        assert await uow.claim("other-consumer", ["m1"]) == {"m1"}
        await uow.commit()


async def test_x1_bad_and_poisonous_messages_are_dead_lettered_rest_applied(
    stack, db: Database, kafka: Kafka
) -> None:
    topic = f"pings-{uuid.uuid4().hex[:8]}"

    async def handler(items, uow) -> None:
        for item in items:
            if item.message.n < 0:
                raise RuntimeError(f"negative n in {item.message.id}")
        await uow.conn.executemany(
            "INSERT INTO applied (id, n) VALUES ($1, $2)",
            [(i.message.id, i.message.n) for i in items],
        )

    settings = settings_for(stack)
    consumer = BatchApplier(
        "pings", db, json_parser(Ping), handler, message_id=lambda m: m.id, topic=topic
    )
    running = consuming(settings, topic, consumer)
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    await running.__aenter__()
    relay_producer = make_producer(settings, "test-relay")
    await relay_producer.start()
    relay = asyncio.create_task(OutboxRelay(db.pool, relay_producer, db.schema).run())
    try:
        payloads = [
            b'{"id": "a", "n": 1}',
            b'{"id": "b", "n": "not a number"}',  # invalid: X1
            b"\xff\xfe",  # not even UTF-8
            b'{"id": "c", "n": -1}',  # valid but the handler fails on it
            b'{"id": "d", "n": 4}',
            b'{"id": "a", "n": 1}',  # a redelivery of "a": X2
        ]
        for p in payloads:
            await producer.send(topic, p, key=b"same-key", partition=0)
        await producer.flush()

        async def applied():
            async with db.pool.acquire() as conn:
                rows = await conn.fetch("SELECT id, n FROM applied ORDER BY id")
            return [(r["id"], r["n"]) for r in rows] if len(rows) == 2 else None

        assert await eventually(applied) == [("a", 1), ("d", 4)]

        async def letters():
            got = [v for _, v in await kafka.read_all(f"{topic}.dlq")]
            return got if len(got) == 3 else None

        dead = await eventually(letters)
        originals = {base64.b64decode(d["original"]): d for d in dead}
        assert set(originals) == {payloads[1], payloads[2], payloads[3]}
        assert "n: " in originals[payloads[1]]["error"]
        assert "negative n in c" in originals[payloads[3]]["error"]
        assert [originals[p]["source_offset"] for p in payloads[1:4]] == [1, 2, 3]
        assert all(d["source_topic"] == topic for d in dead)
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await running.__aexit__(None, None, None)
        await producer.stop()
        await relay_producer.stop()


async def test_x2_database_outage_is_retried_not_dead_lettered(stack, db: Database) -> None:
    """A handler whose database connection fails does not ack: the batch is read again."""
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    calls: list[int] = []

    async def handler(items, uow) -> None:
        calls.append(len(items))
        if len(calls) == 1:
            raise asyncpg.PostgresConnectionError("connection lost")
        await uow.conn.executemany(
            "INSERT INTO applied (id, n) VALUES ($1, $2)",
            [(i.message.id, i.message.n) for i in items],
        )

    settings = settings_for(stack)
    consumer = BatchApplier("outage", db, json_parser(Ping), handler, message_id=lambda m: m.id)
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    running = consuming(settings, topic, consumer)
    await running.__aenter__()
    try:
        await producer.send_and_wait(topic, json.dumps({"id": "z", "n": 9}).encode(), partition=0)

        async def applied():
            async with db.pool.acquire() as conn:
                return await conn.fetchval("SELECT n FROM applied WHERE id = 'z'")

        assert await eventually(applied) == 9
        assert len(calls) >= 2
        async with db.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0  # no dead letter
    finally:
        await running.__aexit__(None, None, None)
        await producer.stop()


async def test_x2_inbox_ids_and_finished_mails_are_pruned_after_the_retention(
    db: Database,
) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO processed_messages (consumer, message_id, processed_at) VALUES"
            " ('c', 'old', now() - interval '8 days'), ('c', 'new', now())"
        )
        await conn.execute(
            "INSERT INTO mail_queue (dedupe_key, kind, account_id, message_id, mail_from,"
            " rcpt_to, content, status, finalized, created_at) VALUES"
            " ('sent-old', 'k', 'a', '<1@x>', 'f@x.test', 't@x.test', '', 'sent', true,"
            "  now() - interval '8 days'),"
            " ('unfinalized-old', 'k', 'a', '<2@x>', 'f@x.test', 't@x.test', '', 'sent', false,"
            "  now() - interval '8 days'),"
            " ('pending-old', 'k', 'a', '<3@x>', 'f@x.test', 't@x.test', '', 'pending', true,"
            "  now() - interval '8 days'),"
            " ('sent-new', 'k', 'a', '<4@x>', 'f@x.test', 't@x.test', '', 'sent', true, now())"
        )
    deleted = await prune(db.pool, timedelta(days=7), chunk=1)  # chunks of one: loops
    assert deleted == {"processed_messages": 1, "mail_queue": 1}
    async with db.pool.acquire() as conn:
        inbox = await conn.fetch("SELECT message_id FROM processed_messages")
        ids = {r["message_id"] for r in inbox}
        mails = {r["dedupe_key"] for r in await conn.fetch("SELECT dedupe_key FROM mail_queue")}
    assert ids == {"new"}
    # Mails still to send or whose outcome is not out yet are never pruned.
    assert mails == {"unfinalized-old", "pending-old", "sent-new"}


async def test_x2_a_commit_wakes_its_own_process_relay_by_a_call_and_others_by_notify(
    stack, db: Database, kafka: Kafka
) -> None:
    """A unit of work on the relay's own pool, or on a connection kept from it, wakes it
    without `pg_notify` (one round trip and a wake-up of every listener fewer per batch);
    one on another pool, as another replica's or a tool's, still notifies. The relay
    polls only once a minute here, so only a wake publishes the rows in time."""
    topic = f"outbox-wake-{uuid.uuid4().hex[:8]}"
    heard: list[str] = []
    listener = await asyncpg.connect(stack.dsn)
    await listener.add_listener(notify_channel(db.schema), lambda *a: heard.append(a[2]))
    other = Database(stack.dsn, db.schema, 1)
    await other.start()
    producer = make_producer(settings_for(stack), "test-outbox-wake")
    await producer.start()
    relay = asyncio.create_task(OutboxRelay(db.pool, producer, db.schema, idle_poll_s=60).run())
    try:
        await eventually(lambda: _async(wakes.local(db.pool, db.schema)))
        async with db.uow() as uow:
            uow.publish(topic, "k", b'{"n": 1}')
            await uow.commit()

        async def relayed() -> bool:
            # The relay deletes its rows once the broker acknowledged them.
            async with db.pool.acquire() as conn:
                return await conn.fetchval("SELECT count(*) = 0 FROM outbox")

        await eventually(relayed, timeout_s=10)
        # A loop's kept connection (as the mail worker keeps one) that names its pool.
        kept = _Kept(db.pool)
        try:
            async with UnitOfWork(kept, db.schema) as uow:
                uow.publish(topic, "k", b'{"n": 2}')
                await uow.commit()
        finally:
            await kept.close()
        await eventually(relayed, timeout_s=10)
        async with other.uow() as uow:
            uow.publish(topic, "k", b'{"n": 3}')
            await uow.commit()
        await eventually(relayed, timeout_s=10)

        async def all_three():
            got = await kafka.read_all(topic)
            return got if len(got) == 3 else None

        got = await eventually(all_three)
        assert [v for _, v in got] == [{"n": 1}, {"n": 2}, {"n": 3}]
        # Notifications arrive in commit order: the second commit's is here, and the
        # first commit sent none.
        await eventually(lambda: _async(heard))
        assert heard == [notify_channel(db.schema)]
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await producer.stop()
        await other.close()
        await listener.close()
    assert wakes.local(db.pool, db.schema) == ()  # a stopped relay is not woken


async def _async(value):
    return value


class _Kept:
    """One connection kept across units of work, naming the pool it came from."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.origin, self._conn = pool, None

    async def acquire(self) -> asyncpg.Connection:
        if self._conn is None:
            self._conn = await self.origin.acquire()
        return self._conn

    async def release(self, conn: asyncpg.Connection) -> None:
        """Kept for the next unit of work."""

    async def close(self) -> None:
        if self._conn is not None:
            await self.origin.release(self._conn)
