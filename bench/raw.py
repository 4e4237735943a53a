"""The ceilings the product is compared with, measured on the same broker and server:
a plain aiokafka consume → JSON parse → produce loop (its rate, and its latency over
one and two hops at a paced load), and a plain aiosmtplib send loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bench import product


async def preload(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    """Write (key, value) pairs to `topic` as fast as the producer goes."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        for key, value in payloads:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _clients(
    bootstrap: str, source: str, group_id: str | None = None, **consumer_options: Any
) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
    """The raw loop's two clients: a consumer group on `source` (new unless named) that
    commits by hand, and a producer acknowledged by all replicas, without linger."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group_id or f"bench-raw-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        heartbeat_interval_ms=500,
        **consumer_options,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, max_batch_size=1024 * 1024
    )
    return consumer, producer


async def _answer(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, sink: str, batch: dict[Any, Any]
) -> int:
    """The raw loop's work on one fetched batch: parse each record, produce a keyed reply
    to `sink`, wait for the broker's acks, commit the offsets; returns how many."""
    futures = []
    for records in batch.values():
        for r in records:
            event = json.loads(r.value)
            out = json.dumps({"event_id": event["event_id"], "ok": True}).encode()
            futures.append(await producer.send(sink, out, key=r.key))
    for f in futures:
        await f
    if batch:
        await consumer.commit()
    return len(futures)


async def timed_drain(
    bootstrap: str,
    source: str,
    count: int,
    batch: int,
    apply: Callable[[AIOKafkaConsumer, AIOKafkaProducer, dict[Any, Any]], Awaitable[int]],
    group_id: str | None = None,
) -> float:
    """Messages per second of a raw loop over `count` messages already on `source`: each
    fetched batch (at most `batch` records) goes to `apply(consumer, producer, batch)`,
    which returns how many it handled; timed from the first batch fetched to the last
    handled. In a new consumer group unless one is named."""
    consumer, producer = _clients(
        bootstrap,
        source,
        group_id,
        auto_offset_reset="earliest",
        max_poll_records=batch,
        session_timeout_ms=2000,
    )
    await consumer.start()
    await producer.start()
    try:
        done = 0
        started: float | None = None
        while done < count:
            fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
            if not fetched:
                continue
            if started is None:
                started = time.perf_counter()
            done += await apply(consumer, producer, fetched)
        assert started is not None
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()


async def kafka_ceiling(bootstrap: str, source: str, sink: str, count: int) -> float:
    """Messages per second of consume → json.loads → produce (keyed), committing offsets
    once per batch, over `count` messages already on `source`."""
    return await timed_drain(
        bootstrap, source, count, 500, lambda c, p, batch: _answer(c, p, sink, batch)
    )


async def _relay(
    bootstrap: str, source: str, sink: str, fetch_wait_ms: int, ready: asyncio.Event
) -> None:
    """The raw loop as a service would run it: a consumer group on `source` that parses
    each record and produces a keyed reply to `sink`, committing once per batch, until
    cancelled. `ready` is set once the group has its partitions."""
    consumer, producer = _clients(
        bootstrap,
        source,
        auto_offset_reset="latest",
        fetch_max_wait_ms=fetch_wait_ms,
        session_timeout_ms=6000,
    )
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            await _answer(consumer, producer, sink, batch)
    finally:
        await consumer.stop()
        await producer.stop()


async def kafka_latency(
    bootstrap: str,
    producer: AIOKafkaProducer,
    rate: float,
    seconds: float,
    fetch_wait_ms: int,
    partitions: int,
) -> dict[str, dict[str, float]]:
    """The latency floor of the broker under a paced load, in ms (p50, p95, p99): bench
    events sent by `producer` at `rate` per second to a topic of `partitions`, read by a
    topic reader as the bench reads the product's topics (one hop), and relayed by the
    raw loop to a second topic with the services' fetch wait (two hops: what event →
    alert request crosses, with no database or logic between)."""
    tag = f"rawlat{int(rate)}-{uuid.uuid4().hex[:4]}"
    source, sink = f"bench-{tag}-in", f"bench-{tag}-out"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [
                    NewTopic(t, num_partitions=partitions, replication_factor=1)
                    for t in (source, sink)
                ]
            )
    finally:
        await admin.close()
    ready = asyncio.Event()
    relay = asyncio.create_task(_relay(bootstrap, source, sink, fetch_wait_ms, ready))
    follower = product.Follower(bootstrap, [source, sink])
    await follower.start()
    try:
        await asyncio.wait_for(ready.wait(), 60)
        events = [product.event(i, tag, i % 10 == 0) for i in range(int(rate * seconds))]
        sent = await product.paced(producer, source, events, rate)
        await product.wait_for(
            lambda: follower.count(sink) >= len(events), 120, f"the raw relay at {rate}/s"
        )
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await follower.stop()

    def latency(topic: str) -> dict[str, float]:
        times = [t - sent[v["event_id"]] for t, v in follower.arrivals[topic]]
        return {q: 1000 * v for q, v in product.percentiles(times).items()}

    return {"one_hop": latency(source), "two_hops": latency(sink)}


def _raw_mail(n: int) -> tuple[str, EmailMessage]:
    msg = EmailMessage()
    msg["From"] = "bench@acme.test"
    msg["To"] = to = f"raw-{n % 5}@acme.test"
    msg["Subject"] = f"raw {n}"
    msg["Message-ID"] = f"<raw-{n}@bench>"
    msg.set_content("Ada scored 3\n")
    return to, msg


async def smtp_ceiling(port: int, count: int, *, prepared: bool = False) -> float:
    """Mails per second over one reused aiosmtplib connection to the capture server.

    As a plain sender writes it, each mail is built (`EmailMessage`) and sent in the
    timed loop: (d), the baseline of the mail target, which counts the building of each
    mail as the product's own figure does. `prepared`: the mails are bytes before the
    clock starts, so the loop is the SMTP conversation alone: (d'), the ceiling of the
    connection and the capture server."""
    ready = [(to, msg.as_bytes()) for to, msg in map(_raw_mail, range(count))] if prepared else []
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    await client.connect()
    try:
        started = time.perf_counter()
        if prepared:
            for to, content in ready:
                await client.sendmail("bench@acme.test", [to], content)
        else:
            for n in range(count):
                to, msg = _raw_mail(n)
                await client.send_message(msg)
        return count / (time.perf_counter() - started)
    finally:
        await client.quit()
