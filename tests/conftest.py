"""Session fixtures: one embedded stack (broker, PostgreSQL, SMTP capture) for the whole
run, stopped at the end; helpers to publish, read topics and poll with a deadline.

Tests isolate themselves with unique account ids (`account` fixture), never by order.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import settings

from tools.devstack import EmbeddedStack

T = TypeVar("T")

# Property tests explore new random examples on every local run (and keep what they find
# in .hypothesis/). In CI (`CI` set) they run a fixed, reproducible set, so a red build
# always names a failure that the next run shows again; exploration stays a local habit.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    # Several members of each main input's group (the default is one): the component,
    # end-to-end, console and browser tests then apply batches concurrently, the harder
    # case; the fault suite's own stack keeps the default.
    s = EmbeddedStack(tmp_path_factory.mktemp("stack"), service_env={"KAFKA_INPUT_CONSUMERS": "4"})
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def account() -> str:
    """A fresh account id: each test's data is its own."""
    return f"acct-{uuid.uuid4().hex[:10]}"


async def eventually(
    probe: Callable[[], Awaitable[T]], timeout_s: float = 30.0, interval_s: float = 0.1
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last value: {last!r})")


class Kafka:
    """Publish JSON (or raw bytes) and read whole topics, for assertions."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def send(self, topic: str, key: str | None, value: Any) -> None:
        if isinstance(value, bytes) or value is None:
            raw = value
        elif hasattr(value, "to_bytes"):
            raw = value.to_bytes()
        else:
            raw = json.dumps(value).encode()
        await self.producer.send_and_wait(topic, raw, key=key.encode() if key else None)

    async def read_all(self, topic: str) -> list[tuple[str | None, dict[str, Any] | None]]:
        """Every message now on `topic` as (key, decoded JSON value)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not parts:
                await consumer.stop()
                consumer = AIOKafkaConsumer(topic, bootstrap_servers=self.bootstrap)
                return []
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            end = await consumer.end_offsets(parts)
            out: list[tuple[str | None, dict[str, Any] | None]] = []
            remaining = {tp for tp in parts if end[tp] > 0}
            deadline = time.monotonic() + 10
            while remaining and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for r in records:
                        key = r.key.decode() if r.key else None
                        out.append((key, json.loads(r.value) if r.value else None))
                        if r.offset + 1 >= end[tp]:
                            remaining.discard(tp)
            return out
        finally:
            await consumer.stop()


@pytest.fixture(scope="session")
async def kafka(stack: EmbeddedStack) -> AsyncIterator[Kafka]:
    k = Kafka(stack.broker.bootstrap)
    await k.start()
    try:
        yield k
    finally:
        await k.stop()


def mail_to(stack: EmbeddedStack, address: str) -> list[Any]:
    """Captured mails addressed to `address`."""
    return [m for m in stack.smtp.messages() if address.lower() in str(m["To"]).lower()]


ROOT = Path(__file__).resolve().parent.parent
