"""Dead letters for operators: list a topic's dead letters and re-publish them to their
source topic after a fix (X1), each once.

What was replayed is recorded on the compacted topic `dlq-replays` (key
`<dlq topic>:<partition>:<offset>`), written after the broker acknowledged the replayed
record: a second run skips it, from any machine, without a database. A crash between the
two can replay a letter twice; consumers dedupe by message id (X2).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from shared.contracts import DeadLetter, topics, utcnow
from shared.messaging.clients import connection_options, make_producer
from shared.settings import Settings

REPLAY_HEADER = "consentflow-replayed-from"


class NoSuchTopic(LookupError):
    """The topic, or its dead-letter topic, is not on the broker; the text says which."""


@dataclass(frozen=True)
class Letter:
    """One record of `<topic>.dlq`, where it sits, and whether it was replayed."""

    partition: int
    offset: int
    letter: DeadLetter | None
    error: str | None = None  # the record is not a dead letter we can read
    replayed: bool = False

    def ref(self, dlq_topic: str) -> str:
        return f"{dlq_topic}:{self.partition}:{self.offset}"

    @property
    def replayable(self) -> bool:
        return (
            self.letter is not None
            and not self.letter.original_truncated
            and self.letter.original is not None
        )


async def _read(
    settings: Settings,
    topic: str,
    partition: int | None = None,
    start: int | None = None,
    end: int | None = None,
    *,
    must_exist: tuple[str, ...] = (),
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """(partition, offset, key, value) of every record in range, read to the end offsets
    as they were when the read began (none of a topic the broker does not have).

    Raises NoSuchTopic when a topic of `must_exist` is not on the broker."""
    consumer = AIOKafkaConsumer(**connection_options(settings), enable_auto_commit=False)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # a consumer that could not start still holds a client
        raise
    try:
        # A metadata request: it also lets the consumer's own start-up tasks run, which a
        # stop right after start would cancel before they began (a CancelledError out of
        # `stop`).
        known = await consumer.topics()
        for name in must_exist:
            if name not in known:
                raise NoSuchTopic(name)
        parts = [
            TopicPartition(topic, p)
            for p in sorted(consumer.partitions_for_topic(topic) or ())
            if partition is None or p == partition
        ]
        if not parts:
            return []
        consumer.assign(parts)
        first = await consumer.beginning_offsets(parts)
        last = await consumer.end_offsets(parts)
        stop = {tp: min(last[tp], end + 1) if end is not None else last[tp] for tp in parts}
        begin = {tp: max(first[tp], start or 0) for tp in parts}
        remaining = set()
        for tp in parts:
            if begin[tp] < stop[tp]:
                consumer.seek(tp, begin[tp])
                remaining.add(tp)
            else:
                consumer.pause(tp)
        out: list[tuple[int, int, bytes | None, bytes | None]] = []
        deadline = time.monotonic() + max(30.0, settings.kafka_request_timeout_ms / 1000)
        quiet_since = time.monotonic()
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < stop[tp]:
                        out.append((tp.partition, r.offset, r.key, r.value))
            for tp in list(remaining):
                # The position passes the end offset even where compaction or the
                # broker left gaps in the offsets.
                if await consumer.position(tp) >= stop[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 3.0:
                break  # nothing more arrives: the end offsets counted what is not there
        if remaining and time.monotonic() >= deadline:
            raise TimeoutError(f"could not read {topic} to its end")
        return sorted(out, key=lambda x: (x[0], x[1]))
    finally:
        await consumer.stop()


async def replayed_refs(settings: Settings) -> set[str]:
    """Every dead letter already replayed."""
    return {
        k.decode()
        for _, _, k, v in await _read(settings, settings.kafka_topic(topics.DLQ_REPLAYS))
        if k is not None and v is not None
    }


async def dead_letters(
    settings: Settings,
    topic: str,
    partition: int | None = None,
    start: int | None = None,
    end: int | None = None,
) -> list[Letter]:
    """The dead letters of `topic` (the source topic's name) in the given range."""
    source, dlq_topic = settings.kafka_topic(topic), settings.kafka_topic(topics.dlq(topic))
    try:
        read = await _read(
            settings, dlq_topic, partition, start, end, must_exist=(source, dlq_topic)
        )
    except NoSuchTopic as exc:
        if exc.args[0] == source:
            raise NoSuchTopic(
                f"no topic {source!r} on the broker; dead letters are kept per input topic"
                f" ({', '.join(topics.INPUT_TOPICS)})"
            ) from None
        raise NoSuchTopic(
            f"no dead letters for {source!r}: its dead-letter topic {dlq_topic!r} does not exist"
        ) from None
    done = await replayed_refs(settings)
    letters = []
    for p, o, _key, value in read:
        try:
            letter, problem = DeadLetter.model_validate_json(value or b""), None
        except ValidationError as exc:
            letter, problem = None, f"not a dead letter: {exc.errors()[0]['msg']}"
        letters.append(Letter(p, o, letter, problem, f"{dlq_topic}:{p}:{o}" in done))
    return letters


@dataclass
class ReplayReport:
    replayed: list[str]
    already: list[str]
    unreplayable: list[str]


async def replay(
    settings: Settings,
    topic: str,
    partition: int | None = None,
    start: int | None = None,
    end: int | None = None,
    only: Callable[[Letter], bool] | None = None,
) -> ReplayReport:
    """Re-publish each dead letter in range not replayed before to its source topic,
    with its original key and bytes, and record it (see the module docstring). `only`
    narrows the letters (an account's own, for the HTTP API)."""
    dlq_topic = settings.kafka_topic(topics.dlq(topic))
    letters = await dead_letters(settings, topic, partition, start, end)
    if only is not None:
        letters = [x for x in letters if only(x)]
    report = ReplayReport([], [], [])
    todo = []
    for item in letters:
        ref = item.ref(dlq_topic)
        if item.replayed:
            report.already.append(ref)
        elif not item.replayable:
            report.unreplayable.append(ref)
        else:
            todo.append(item)
    if not todo:
        return report
    producer = make_producer(settings, "consentflow-dlq-replay")
    await producer.start()
    try:
        for item in todo:
            assert item.letter is not None and item.letter.original is not None
            ref = item.ref(dlq_topic)
            await producer.send_and_wait(
                item.letter.source_topic,
                base64.b64decode(item.letter.original),
                key=item.letter.key.encode() if item.letter.key is not None else None,
                headers=[(REPLAY_HEADER, ref.encode())],
            )
            await producer.send_and_wait(
                settings.kafka_topic(topics.DLQ_REPLAYS),
                json.dumps(
                    {"replayed_at": utcnow().isoformat(), "to": item.letter.source_topic}
                ).encode(),
                key=ref.encode(),
            )
            report.replayed.append(ref)
    finally:
        await producer.stop()
    return report
