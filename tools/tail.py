"""`consentflow tail TOPIC`: the records of a topic as JSON lines, as they arrive.

A consumer of no group (it commits nothing and takes no partition from a service):
every partition assigned, read from the end (or the beginning), one line per record
with its partition, offset, key, timestamp and value (the JSON payload, or the bytes as
text when they are not JSON)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.messaging.clients import connection_options
from shared.settings import Settings


class NoSuchTopic(LookupError):
    """The broker does not have the topic."""


def record_line(topic: str, r: ConsumerRecord) -> str:
    """One record as one JSON line."""
    try:
        value: Any = json.loads(r.value) if r.value is not None else None
    except ValueError:
        value = r.value.decode(errors="replace")
    at = datetime.fromtimestamp(r.timestamp / 1000, UTC).isoformat() if r.timestamp else None
    key = r.key.decode(errors="replace") if r.key is not None else None
    return json.dumps(
        {
            "topic": topic,
            "partition": r.partition,
            "offset": r.offset,
            "key": key,
            "timestamp": at,
            "value": value,
        },
        ensure_ascii=False,
    )


async def tail(
    settings: Settings,
    topic: str,
    emit: Callable[[str], None],
    *,
    count: int | None = None,
    from_beginning: bool = False,
    timeout_s: float | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Emit `topic`'s records until `count` of them, `timeout_s` seconds, or SIGINT or
    SIGTERM; returns how many were emitted. `ready` is told once the positions are set.
    NoSuchTopic when the broker lacks it."""
    name = settings.kafka_topic(topic)
    consumer = AIOKafkaConsumer(**connection_options(settings), enable_auto_commit=False)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if name not in await consumer.topics():
            raise NoSuchTopic(name)
        parts = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name))]
        consumer.assign(parts)
        if from_beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            await consumer.seek_to_end(*parts)
            for tp in parts:  # fix the positions now: only what comes after this
                await consumer.position(tp)
        if ready is not None:
            ready(
                f"following {name} from {'the beginning' if from_beginning else 'now'}"
                " (Ctrl-C stops)"
            )
        emitted = 0
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not stop.is_set() and (count is None or emitted < count):
            if deadline is not None and time.monotonic() >= deadline:
                break
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    if count is not None and emitted >= count:
                        break
                    emit(record_line(topic, r))
                    emitted += 1
        return emitted
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await consumer.stop()
