"""What a service does with one batch of records, whatever delivered it (the FastStream
subscribers of `shared.messaging.edge`): parse record by record, dead-letter the bad
ones, dedupe through the inbox, apply the rest on one transaction.

Every hot consumer is a batch subscriber (measured: per-message awaited work runs at
~1.5k msgs/s, batches at 50k+). A batch is handled like this:

1. each record is parsed on its own; a bad one is dead-lettered (X1) and the rest go on;
2. the batch's ids are claimed in the inbox; redeliveries are dropped (X2). A consumer
   declared without `message_id` claims nothing here: its use case proves each effect
   new itself, by a row its own tables already key by the message's id (the executor's
   runs by event id, consent's history by command id), one row per message fewer;
3. the service's handler applies the batch on one transaction and writes its outbox rows;
4. the transaction commits, and only then are the offsets committed (ack after commit,
   by the subscriber's acknowledgement policy).

If the handler raises on a batch, the batch is retried one message at a time so that a
single poisonous message is dead-lettered with its error and nothing else is lost. If the
database is unreachable the batch is not acked: the subscriber seeks back and retries.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from pydantic import BaseModel, ValidationError

from shared.contracts import topics
from shared.contracts.outputs import DeadLetter
from shared.db import Database
from shared.db.errors import TRANSIENT_DB_ERRORS
from shared.db.uow import UnitOfWork
from shared.limits import MAX_INPUT_BYTES, kept_original, too_large
from shared.logging import get_logger
from shared.messaging.headers import BadHeaders, read_trace
from shared.metrics import BATCH_SECONDS, CONSUMED, DEAD_LETTERS, DUPLICATES, UNDECODABLE
from shared.received import Received, Rejected, shared_trace

log = get_logger(__name__)


def describe_error(exc: BaseException) -> str:
    """A short, human-readable reason for a dead letter."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False)[:10]:
            where = ".".join(str(p) for p in err["loc"]) or "message"
            parts.append(f"{where}: {err['msg']}")
        return "invalid message: " + "; ".join(parts)
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, Rejected) else str(exc)


def dead_letter(
    uow: UnitOfWork, consumer: str, record: ConsumerRecord, error: str, topic: str | None = None
) -> None:
    """Queue `record` for `<topic>.dlq` with its original bytes, the error and its offset
    (X1). `topic` is the topic's name without `KAFKA_TOPIC_PREFIX` (the outbox relay puts
    the prefix on every topic it publishes to); the record's own topic when not given."""
    topic = topic or record.topic
    key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else record.key
    value = record.value or b""
    original, truncated = kept_original(value)
    letter = DeadLetter(
        consumer=consumer,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=key[:1000] if key else key,
        original=original,
        original_size=len(value),
        original_truncated=truncated,
        error=error[:4000],
    )
    uow.publish(topics.dlq(topic), key, letter)
    DEAD_LETTERS.labels(consumer, topic).inc()
    # X1: an operator sees each dead letter in the log too, not only as a count (the
    # error is masked like every log value, X4).
    log.warning(
        "dead-lettered",
        consumer=consumer,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        dlq=topics.dlq(topic),
        error=error[:500],
    )


async def dead_letter_reference(
    batch: BatchApplier, topic: str, partition: int, offset: int, error: str
) -> None:
    """Dead-letter an offset whose record batch could not be decoded (X7): no bytes to
    keep, so the letter names where the record is (topic, partition, offset) and why."""
    letter = DeadLetter(
        consumer=batch.name,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=None,
        original="",
        original_size=0,
        error=error[:4000],
    )
    async with batch.db.uow() as uow:
        uow.publish(topics.dlq(topic), None, letter)
        await uow.commit()
    DEAD_LETTERS.labels(batch.name, topic).inc()
    UNDECODABLE.labels(batch.name, topic).inc()


def json_parser(model: type[BaseModel]) -> Callable[[ConsumerRecord], Any]:
    """Parse a record's value as `model` (JSON); raises on bad bytes or a bad shape."""

    def parse(record: ConsumerRecord) -> Any:
        if record.value is None:
            raise ValueError("message has no value")
        return model.model_validate_json(record.value)

    return parse


def _log_ids(good: list[Received[Any]]) -> dict[str, Any]:
    """The correlation ids a batch's log lines carry (X4): the one all its records share,
    or the first 20 (the rest are on the outputs they cause)."""
    if (shared := shared_trace(good)) is not None:
        return {"correlation_id": shared.correlation_id}
    return {"correlation_ids": list(dict.fromkeys(i.correlation_id for i in good[:20]))}


BatchHandler = Callable[[list[Received[Any]], Any], Awaitable[None]]
"""A use case as every consumer runs it: `handle(batch, work)`, the batch's parsed records
and the service's unit of work (`BatchApplier.work` makes it from the transaction)."""


def _the_transaction(uow: UnitOfWork) -> Any:
    return uow


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """One fetched batch after decoding: every record, those that parsed (in order) and
    those set aside with the reason they are dead-lettered."""

    records: tuple[ConsumerRecord, ...]
    good: list[Received[Any]]
    bad: list[tuple[ConsumerRecord, str]]


@dataclass
class BatchApplier:
    """Applies the batches of one topic (see the module docstring). `name` is the
    consumer's name: its consumer group (`consentflow.<name>`), its inbox and its
    metrics' label."""

    name: str
    db: Database
    parse: Callable[[ConsumerRecord], Any]
    handler: BatchHandler
    message_id: Callable[[Any], str | None] | None = None
    topic: str | None = None
    # The service's unit of work over the batch's transaction (its `bootstrap`).
    work: Callable[[UnitOfWork], Any] = _the_transaction

    def decode(self, records: tuple[ConsumerRecord, ...]) -> DecodedBatch:
        """Parse each record on its own (X1): a record that is too large, whose headers
        we cannot trust or whose value breaks its contract is set aside with the reason,
        and its neighbours go on."""
        good: list[Received[Any]] = []
        bad: list[tuple[ConsumerRecord, str]] = []
        for record in records:
            if problem := too_large(len(record.value or b""), MAX_INPUT_BYTES):
                bad.append((record, problem))
                continue
            try:
                # A record without headers has nothing to check or carry yet (Received).
                trace = read_trace(record, self.name) if record.headers else None
                good.append(Received(self.parse(record), record, trace))
            except (ValidationError, ValueError, UnicodeDecodeError, Rejected, BadHeaders) as exc:
                bad.append((record, describe_error(exc)))
        if records:
            CONSUMED.labels(self.name, records[0].topic).inc(len(records))
        return DecodedBatch(records, good, bad)

    async def handle(self, records: tuple[ConsumerRecord, ...]) -> None:
        """Decode and apply `records` (the two steps a subscriber runs apart)."""
        await self.apply(self.decode(records))

    async def apply(self, batch: DecodedBatch) -> None:
        """Apply a decoded batch on one transaction; if the handler raises on it (not
        the database), apply it again one record at a time and dead-letter the record
        that raises (X1). A database error propagates: the batch is not acknowledged."""
        started = time.perf_counter()
        good, bad = batch.good, batch.bad
        try:
            await self._apply(good, bad)
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:
            if len(good) <= 1 and not bad:
                await self._apply([], [(good[0].record, describe_error(exc))] if good else [])
            else:
                log.warning("batch failed; retrying one message at a time", error=str(exc))
                for record, error in bad:
                    await self._apply([], [(record, error)])
                for item in good:
                    try:
                        await self._apply([item], [])
                    except TRANSIENT_DB_ERRORS:
                        raise
                    except Exception as item_exc:
                        await self._apply([], [(item.record, describe_error(item_exc))])
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _apply(
        self, good: list[Received[Any]], bad: list[tuple[ConsumerRecord, str]]
    ) -> None:
        async with self.db.uow() as uow:
            for record, error in bad:
                dead_letter(uow, self.name, record, error, self.topic)
            if good and self.message_id is not None:
                ids = [self.message_id(item.message) for item in good]
                fresh = await uow.claim(self.name, [i for i in ids if i is not None])
                kept: list[Received[Any]] = []
                for item, mid in zip(good, ids, strict=True):
                    if mid is None:
                        kept.append(item)
                    elif mid in fresh:
                        fresh.discard(mid)  # a second copy in the same batch is a duplicate
                        kept.append(item)
                if len(kept) < len(good):
                    DUPLICATES.labels(self.name).inc(len(good) - len(kept))
                good = kept
            if good:
                uow.carry(good)
                with structlog.contextvars.bound_contextvars(**_log_ids(good)):
                    await self.handler(good, self.work(uow))
            await uow.commit()
