"""`python -m bench.fetch_hold [--waits 5 20 100 300]`: how long a consumer's fetch
holds a record that arrives while the fetch waits, on the embedded broker.

A Kafka broker answers a held fetch as soon as it has `fetch.min.bytes` (1) to give, so
a record's time from send to read does not depend on the consumer's
`fetch_max_wait_ms`. This sends one record at a time to a topic one consumer reads, each
after the last was read, and reports the time from send to read at each fetch wait: if
it grows with the wait, the broker holds fetches past the data's arrival, and every
consumer hop of the product costs up to that wait. It starts a broker of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.product import percentiles
from tools.devstack import free_port
from tools.devstack.broker import TansuBroker


async def send_to_read(bootstrap: str, topic: str, wait_ms: int, count: int) -> dict[str, float]:
    """Send → read in ms (p50, p95, p99) of `count` records, one in flight at a time, read
    by a consumer with `fetch_max_wait_ms=wait_ms`; the gap between records varies so
    that sends fall anywhere in the fetch's wait."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=wait_ms
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    part = TopicPartition(topic, 0)
    consumer.assign([part])
    await consumer.seek_to_end(part)
    read: asyncio.Queue[float] = asyncio.Queue()

    async def reader() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            now = time.perf_counter()
            for records in batch.values():
                for _ in records:
                    read.put_nowait(now)

    task = asyncio.create_task(reader())
    try:
        times = []
        for n in range(count):
            sent = time.perf_counter()
            await producer.send_and_wait(topic, b"x", partition=0)
            times.append(await asyncio.wait_for(read.get(), 30) - sent)
            await asyncio.sleep((n * 7 % 23) / 1000)
        return {q: 1000 * v for q, v in percentiles(times).items()}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()
        await producer.stop()


async def run(waits: list[int], count: int) -> None:
    broker = TansuBroker(free_port(), Path(tempfile.mkdtemp()) / "broker.log")
    await asyncio.to_thread(broker.start)
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("fetch-hold", 1, 1)])
        finally:
            await admin.close()
        print("| fetch_max_wait_ms | send → read p50 | p95 | p99 |")
        print("|---|---|---|---|")
        for wait in waits:
            found = await send_to_read(broker.bootstrap, "fetch-hold", wait, count)
            cells = " | ".join(f"{found[q]:.1f} ms" for q in ("p50", "p95", "p99"))
            print(f"| {wait} | {cells} |", flush=True)
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waits", type=int, nargs="+", default=[5, 20, 50, 100, 300])
    parser.add_argument("--count", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(run(args.waits, args.count))


if __name__ == "__main__":
    main()
