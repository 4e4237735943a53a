"""The ceilings the product is compared with, measured on the same broker and server:
a plain aiokafka consume → JSON parse → produce loop, and a plain aiosmtplib send loop."""

from __future__ import annotations

import json
import time
import uuid
from email.message import EmailMessage

import aiosmtplib
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


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


async def kafka_ceiling(bootstrap: str, source: str, sink: str, count: int) -> float:
    """Messages per second of consume → json.loads → produce (keyed), committing offsets
    once per batch, over `count` messages already on `source`."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, max_batch_size=1024 * 1024
    )
    await consumer.start()
    await producer.start()
    try:
        done = 0
        started: float | None = None
        while done < count:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            if started is None and batch:
                started = time.perf_counter()
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
            done += len(futures)
        assert started is not None
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()


async def smtp_ceiling(port: int, count: int) -> float:
    """Mails per second over one reused aiosmtplib connection to the capture server."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    await client.connect()
    try:
        started = time.perf_counter()
        for n in range(count):
            msg = EmailMessage()
            msg["From"] = "bench@acme.test"
            msg["To"] = f"raw-{n % 5}@acme.test"
            msg["Subject"] = f"raw {n}"
            msg["Message-ID"] = f"<raw-{n}@bench>"
            msg.set_content("Ada scored 3\n")
            await client.send_message(msg)
        return count / (time.perf_counter() - started)
    finally:
        await client.quit()
