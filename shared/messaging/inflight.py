"""A group member's batch in flight: a full one is applied while the member fetches and
decodes the next one; a batch's offsets are committed while the next one is applied.

Each member of a consumer group applies its batches one at a time, in order, and
commits a batch's offsets only after the batch's transaction has committed (X2: ack
after commit). Done strictly one step after another (fetch, decode, apply, commit the
offsets, fetch again), a member's event loop sat idle in the fetch and the offset
commit, and the next batch's decoding waited for the transaction before it. In the
bench's flow-executor drain the member is now busy about 4 % more of the time (the
offset commit's round trip is off each batch's path; docs/performance.md).

Here the member hands a decoded batch to `InFlight.start` and, if the batch was full
(a backlog: more records are surely waiting), goes on fetching and decoding the next,
then waits in `settle` for the batch in flight before it starts the next. After a batch
that was not full the member waits before it fetches, as before: at a steady load a
record that arrives while a batch is applied then joins the very next batch, where a
fetch made early would have left it for the one after (measured: event → request p99
at 500 events/s 55 ms one step after another, 99 ms fetching ahead always). The order
holds: one batch of a member is applied at a time, each after the one
before has committed. The offsets of a batch are committed after its transaction, in a
chain that keeps the commits in order, while the next batch is being applied. A crash
in between only means the batch is read again, as before (the inbox, or the effect's
own key, proves it was applied: X2).

A batch whose apply fails (a database error: `BatchApplier.apply` has already
dead-lettered any single bad record) is read again: its partitions are sought back to
its first records, together with any batch fetched after it, which is dropped unapplied
(FastStream's nack does the same seek for a batch it holds). The failure stays noted
until the member's own loop has sought back (`settle`); a rebalance only waits for the
batch (`drain`), so a batch fetched before the rebalance can never be applied and
committed past a batch that failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared.cancellation import raise_if_cancelled
from shared.logging import get_logger
from shared.messaging.batches import DecodedBatch

log = get_logger(__name__)

Records = tuple[ConsumerRecord, ...]


def first_offsets(records: Records) -> dict[TopicPartition, int]:
    """The offset of the first of `records` in each partition they come from."""
    firsts: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        firsts[tp] = min(r.offset, firsts.get(tp, r.offset))
    return firsts


def next_offsets(records: Records) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit once `records` are applied: one past the last of each
    partition."""
    last: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        last[tp] = max(r.offset, last.get(tp, r.offset))
    return {tp: OffsetAndMetadata(offset + 1, "") for tp, offset in last.items()}


class InFlight:
    """The batch a member is applying and the offset commits it has queued (see the
    module docstring). `apply` applies a decoded batch and raises if it was not
    applied; `consumer` gives the member's current Kafka consumer."""

    __slots__ = (
        "_ahead",
        "_applying",
        "_committing",
        "_consumer",
        "_failed",
        "_records",
        "_rereading",
        "apply",
        "name",
    )

    def __init__(
        self,
        name: str,
        apply: Callable[[DecodedBatch], Awaitable[None]],
        consumer: Callable[[], AIOKafkaConsumer],
    ) -> None:
        self.name = name
        self.apply = apply
        self._consumer = consumer
        self._applying: asyncio.Task[None] | None = None
        self._committing: asyncio.Task[None] | None = None
        # The records of the batch being applied (lag counts them as not applied yet).
        self._records: Records = ()
        # The records of the batch that failed, until the member's loop has sought back.
        self._failed: Records = ()
        # Sought back after a failure, and the batch not started again yet.
        self._rereading = False
        # Whether the member may fetch while the batch in flight is applied.
        self._ahead = False

    @property
    def idle(self) -> bool:
        """No batch is being applied, none has failed and none is waiting to be read
        again: an empty fetch means the member is caught up."""
        running = self._applying is not None and not self._applying.done()
        return not (running or self._failed or self._rereading)

    def start(self, batch: DecodedBatch, *, full: bool) -> None:
        """Apply `batch` in the background; `settle` must have said True since the last
        start. `full`: the batch was as large as a fetch returns, so the next one is
        fetched meanwhile (`before_fetch`)."""
        assert self._applying is None and not self._failed, "settle before start"
        self._rereading = False
        self._ahead = full
        self._records = batch.records
        self._applying = asyncio.create_task(self._apply(batch), name=f"apply {self.name}")

    def unapplied(self) -> dict[TopicPartition, int]:
        """The first offset per partition of the records read but not applied: the
        batch being applied, or the one that failed."""
        if self._failed:
            return first_offsets(self._failed)
        if self._applying is not None and not self._applying.done():
            return first_offsets(self._records)
        return {}

    async def before_fetch(self) -> None:
        """Before the member fetches: wait for the batch in flight unless it was full,
        and seek back one that failed."""
        await self.settle(wait=not self._ahead)

    async def settle(self, fetched: Records = (), *, wait: bool = True) -> bool:
        """Wait for the batch in flight (or, if not `wait`, only look whether it is
        done). True: it was applied (or none was in flight), the member may go on.
        False: it failed; its partitions and those of `fetched` (records the member read
        after it) are sought back to their first records, to be read again."""
        task = self._applying
        if task is not None:
            if not wait and not task.done():
                return True
            # Not `await task`: a member cancelled while it waits must not cancel the apply.
            await asyncio.wait([task])
            if self._applying is task:
                self._applying = None
        if not self._failed:
            return True
        self._seek_back(self._failed + fetched)
        self._failed = ()
        self._rereading = True
        return False

    def reassigned(self) -> None:
        """The group gave the member its partitions anew: they are read from their
        committed offsets, so nothing is waiting to be read again."""
        self._rereading = False

    async def drain(self) -> None:
        """Wait until the batch in flight is done and its offsets are committed (before
        a rebalance takes the partitions, a stop, or a read of the committed offsets).
        A failure stays noted for `settle`."""
        if self._applying is not None:
            await asyncio.wait([self._applying])
        if self._committing is not None:
            await asyncio.wait([self._committing])

    def cancel(self) -> None:
        """Stop the batch in flight (a stop that could not wait for it): it is not
        committed, so it is read again."""
        if self._applying is not None:
            self._applying.cancel()

    async def _apply(self, batch: DecodedBatch) -> None:
        try:
            await self.apply(batch)
        except asyncio.CancelledError:
            self._failed = batch.records  # not applied (a stop cancelled it): read again
            raise
        except Exception:
            self._failed = batch.records
            raise_if_cancelled()
            return
        previous = self._committing
        self._committing = asyncio.create_task(
            self._commit(batch.records, previous), name=f"commit {self.name}"
        )

    async def _commit(self, records: Records, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # commits stay in order
        try:
            await self._consumer().commit(next_offsets(records))
        except Exception as exc:
            raise_if_cancelled()
            # Applied but not committed (a rebalance took the partitions, the broker is
            # away): the batch is read again and proven applied (X2).
            log.warning("offsets not committed", consumer=self.name, error=repr(exc))

    def _seek_back(self, records: Records) -> None:
        consumer = self._consumer()
        held = consumer.assignment()
        for tp, offset in first_offsets(records).items():
            if tp in held:
                consumer.seek(tp, offset)
