"""The worker that sends a service's mail queue (shared/db/mail_queue.py) over SMTP.

A few tasks share the work, so that each costs PostgreSQL few statements per mail:

- the **claimer** claims due mails (`FOR UPDATE SKIP LOCKED`) with their envelopes and
  marks them `sending` under a lease in one committed transaction, *before* anything is
  said to SMTP, and puts them on one queue that every connection takes from: a claim is
  spread over all connections, and a slow answer on one holds only the mail it is
  sending. It claims again when the queue runs low or a new mail is notified;
- one **lane** per SMTP connection (kept open across mails and claims, `SmtpSender`)
  sends a mail and hands the answer to the writer: 2xx `sent`; 5xx `failed` with the
  server's answer (permanent); 4xx or a lost connection back to `pending` with
  exponential backoff, up to a limit (A9);
- the **writer** records every answer that came in since its last write in one
  autocommitted statement (durably committed: neither a crash of this process nor one
  of PostgreSQL loses it), after waiting a few milliseconds for the answers of the
  connections past DATA (they come without waiting for this write; writing each answer
  on its own was more than half the statements per alert), and keeps the leases of held
  mails from running out while a slow server answers (another worker would claim and
  send them too);
- the **finisher** runs the service's `on_final` hook for answered mails, a batch at a
  time, in one transaction with marking them finalized.

A lane does not give the server its next mail until the acceptance of its last one is
written: it sends the next envelope (`MAIL FROM`, `RCPT TO`) while that write is under
way, and `DATA`, after which the server takes the mail, only once it went through (and
the mail's lease still holds). So, as before answers were batched, a crash between a
server's 2xx and its record leaves at most one mail per connection `sending`; after its
lease runs out it is sent again with the same Message-ID. That is the one remaining
window for a duplicate (documented in docs/operations.md and docs/rules.md). The writes
of all connections share a statement: the lanes wait for one write together.

A service takes part through `MailHooks`: `admit` runs in the unit of work that claims
due mails (to hold mails back, e.g. the per-account sending limit, A8) and `on_final`
once per finished mail, in the unit of work that marks it finalized (e.g. to publish an
alert outcome; a crash before that runs it on the next sweep). Both write their outputs
through that unit of work, so they commit with it. Without hooks every claimed mail is
sent and its answer written as final.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import asyncpg

from shared.cancellation import raise_if_cancelled, stop_tasks
from shared.db import mail_queue
from shared.db.errors import DB_ERRORS
from shared.db.mail_queue import Answer, Claimed, QueuedMail
from shared.db.notify import listen_forever
from shared.db.uow import UnitOfWork
from shared.health import report_progress, report_trouble
from shared.logging import get_logger
from shared.mail import SmtpSender
from shared.metrics import MAILS

if TYPE_CHECKING:
    from shared.db import Database
    from shared.settings import Settings

log = get_logger(__name__)


class MailHooks(Protocol):
    """What a service decides about its mails."""

    async def admit(self, uow: UnitOfWork, claimed: Sequence[QueuedMail]) -> set[int]:
        """The ids among `claimed` to send now; the rest stay claimed by nobody."""
        ...

    async def on_final(self, uow: UnitOfWork, finished: Sequence[QueuedMail]) -> None:
        """Act on mails that are `sent` or `failed` for good."""
        ...


class _Held:
    """One pool connection a task keeps across its statements and transactions: handing
    a connection back to the pool costs four reset statements each time. Lent to a
    `UnitOfWork` as its `uow.Connections` (acquire gives the kept connection, release
    keeps it)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: asyncpg.Connection | None = None

    @property
    def origin(self) -> asyncpg.Pool:
        """The pool the kept connection comes from: the relay of this process on that
        pool is woken by a call when a unit of work on it commits (`shared.db.wakes`)."""
        return self._pool

    async def acquire(self) -> asyncpg.Connection:
        if self._conn is not None and not _usable(self._conn):
            await self.discard()
        if self._conn is None:
            self._conn = await self._pool.acquire()
        return self._conn

    async def release(self, conn: asyncpg.Connection) -> None:
        """Kept for the next transaction."""

    async def discard(self) -> None:
        """Give up the connection after a failure; the next use takes a fresh one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if _usable(conn):
                conn.terminate()
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(asyncpg.InterfaceError):
                if _usable(conn) and conn.is_in_transaction():
                    conn.terminate()  # stopped mid-transaction: nothing of it may commit
            with contextlib.suppress(Exception):
                await self._pool.release(conn)


def _usable(conn: asyncpg.Connection) -> bool:
    """Open and still ours: after the server went away the pool takes a lost
    connection back by itself, and then every call on it raises."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


@dataclass(eq=False)
class _Claim:
    """The mails of one claim not answered yet (or answered, not yet written)."""

    open: int


@dataclass(eq=False)
class _InHand:
    """A claimed mail until its answer is handed to the writer."""

    claimed: Claimed
    leased_until: float  # monotonic; the database's lease ends no earlier
    claim: _Claim

    @property
    def mail(self) -> QueuedMail:
        return self.claimed.mail


@dataclass(eq=False)
class _Pending:
    """An answer waiting for the writer, and who waits for it to be written."""

    answer: Answer
    claim: _Claim
    written: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class MailWorker:
    def __init__(
        self,
        db: Database,
        senders: Sequence[SmtpSender],
        *,
        hooks: MailHooks | None = None,
        batch_size: int = 200,
        lease: timedelta = timedelta(seconds=60),
        max_attempts: int = 8,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        idle_poll_s: float = 0.25,
        finalize_every: int = 200,
        finalize_delay_s: float = 0.1,
        sweep_every_s: float = 5.0,
        write_wait_s: float = 0.005,
    ) -> None:
        self._db = db
        self._senders = list(senders)
        self._hooks = hooks
        self._batch_size = batch_size
        self._lease = lease
        self._lease_s = lease.total_seconds()
        self._max_attempts = max_attempts
        self._base_backoff_s = base_backoff_s
        self._max_backoff_s = max_backoff_s
        self._idle_poll_s = idle_poll_s
        # The finisher runs when every mail of a claim is answered (the claim's alerts
        # are done together: one finishing per claim under load, at once when light),
        # when the worker has nothing else in hand, when `finalize_every` answers wait
        # or the oldest waited `finalize_delay_s` (a claim held up by a slow answer).
        self._finalize_every = finalize_every
        self._finalize_delay_s = finalize_delay_s
        self._sweep_every_s = sweep_every_s
        # The writer waits up to `write_wait_s` for the answers of connections whose
        # mail the server is taking right now (past DATA), to write them together.
        self._write_wait_s = write_wait_s
        self._in_data = 0  # lanes past DATA, their answer not yet handed to the writer
        # Readiness, per part: a part that keeps failing shows even while the others work.
        self._health = {
            part: f"mail.{db.schema}" + ("" if part == "claimer" else f".{part}")
            for part in ("claimer", "writer", "finisher")
        }
        self._swept_at: float | None = None
        self._queue: asyncio.Queue[_InHand] = asyncio.Queue()
        self._held: dict[int, _InHand] = {}  # claimed, not yet answered
        self._answers: list[_Pending] = []  # answered, not yet written
        self._finished: dict[int, float] = {}  # written as final, hook not run: id -> when
        self._claims_done = False  # a claim was answered in full since the last finishing
        self._wake_claimer = asyncio.Event()
        self._wake_writer = asyncio.Event()
        self._wake_finisher = asyncio.Event()

    @classmethod
    def from_settings(
        cls, db: Database, settings: Settings, *, hooks: MailHooks | None = None
    ) -> MailWorker:
        """A worker with the batch, lease and retry policy of the `MAIL_*` settings."""
        return cls(
            db,
            [SmtpSender(settings) for _ in range(settings.mail_connections)],
            hooks=hooks,
            batch_size=settings.mail_batch_size,
            lease=timedelta(seconds=settings.mail_lease_s),
            max_attempts=settings.mail_max_attempts,
            base_backoff_s=settings.mail_retry_base_s,
            max_backoff_s=settings.mail_retry_max_s,
        )

    # --- running ---------------------------------------------------------------------

    async def run(self) -> None:
        """Send until cancelled (see the module docstring). Idle, the claimer sleeps
        until a new mail is notified (or `idle_poll_s` passes: retries and deferred
        mails fall due without a notification). When cancelled, answers already in hand
        are still written (briefly), so that a stop does not send them again."""
        claims, marks, finals = _Held(self._db.pool), _Held(self._db.pool), _Held(self._db.pool)
        lanes = [asyncio.create_task(self._lane(sender)) for sender in self._senders]
        others = [
            asyncio.create_task(self._forever("claimer", claims, self._claim_pass)),
            asyncio.create_task(self._forever("finisher", finals, self._finish_pass)),
            asyncio.create_task(
                listen_forever(self._db.pool, f"mail_{self._db.schema}", self._on_notify)
            ),
        ]
        writer = asyncio.create_task(self._forever("writer", marks, self._write_pass))
        try:
            # Unlike gather, a cancelled wait leaves the tasks running: the writer must
            # outlive the lanes to write their last answers.
            done, _ = await asyncio.wait(
                [*lanes, *others, writer], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()
            raise RuntimeError("a part of the mail worker ended")
        finally:
            await stop_tasks([*lanes, *others])
            if self._answers and not writer.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(self._flushed(), 5.0)
            await stop_tasks([writer])
            for held in (claims, marks, finals):
                await held.close()
            for sender in self._senders:
                with contextlib.suppress(Exception):
                    await sender.close()

    async def _flushed(self) -> None:
        while self._answers:
            await asyncio.gather(*(p.written for p in list(self._answers)))

    def _on_notify(self, *_args: object) -> None:
        self._wake_claimer.set()

    async def _forever(
        self, part: str, held: _Held, one_pass: Callable[[_Held], Awaitable[None]]
    ) -> None:
        """Run `one_pass` until cancelled, never dying of one failure: a database error
        waits a second (the connection is replaced), anything else backs off; either is
        reported to readiness until a pass goes through."""
        failures = 0
        while True:
            try:
                await one_pass(held)
                failures = 0
            except DB_ERRORS as exc:
                raise_if_cancelled()
                await held.discard()
                log.warning("mail worker failed; retrying", part=part, error=str(exc))
                report_trouble(self._health[part], f"database: {exc}")
                await asyncio.sleep(1.0)
            except Exception as exc:
                raise_if_cancelled()
                await held.discard()
                failures += 1
                log.exception("mail worker pass failed; retrying", part=part, error=repr(exc))
                report_trouble(self._health[part], f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    # --- claiming ----------------------------------------------------------------------

    async def _claim_pass(self, held: _Held) -> None:
        """Claim when the queue runs low (or is empty), then wait to be woken."""
        self._wake_claimer.clear()
        claimed = asked = 0
        if self._queue.qsize() < len(self._senders):
            asked = self._batch_size
            claimed = await self._claim(held, asked)
        report_progress(self._health["claimer"])
        if claimed < asked or not asked:
            # Nothing more is due (or the queue is full): sleep until woken.
            await _woken(self._wake_claimer, self._idle_poll_s)

    async def _claim(self, held: _Held, limit: int) -> int:
        """Claim up to `limit` due mails and queue those admitted; returns how many due
        mails were found (admitted or not)."""
        started = time.monotonic()
        async with UnitOfWork(held, self._db.schema) as uow:
            found = await mail_queue.claim_due(uow.conn, limit)
            claimed = found
            if found and self._hooks is not None:
                admitted = await self._hooks.admit(uow, [c.mail for c in found])
                claimed = [c for c in found if c.mail.id in admitted]
            if claimed:
                await mail_queue.mark_sending(uow.conn, [c.mail.id for c in claimed], self._lease)
            await uow.commit()
        claim = _Claim(len(claimed))
        for c in claimed:
            item = _InHand(c, started + self._lease_s, claim)
            self._held[c.mail.id] = item
            self._queue.put_nowait(item)
        return len(found)

    # --- sending -----------------------------------------------------------------------

    async def _lane(self, sender: SmtpSender) -> None:
        """Send queued mails over `sender`'s connection, one at a time."""
        while True:
            try:
                await self._lane_run(sender)
            except Exception as exc:
                # `send` never raises; whatever else did must not stop this connection.
                raise_if_cancelled()
                log.exception("mail lane failed; going on", error=repr(exc))
                report_trouble(self._health["claimer"], f"lane: {type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)

    async def _lane_run(self, sender: SmtpSender) -> None:
        last_sent: asyncio.Future[None] | None = None

        async def written() -> None:
            # The server has our last mail: its acceptance is written before the server
            # takes another one from this connection.
            nonlocal last_sent
            if last_sent is not None:
                await asyncio.shield(last_sent)
                last_sent = None

        while True:
            item = await self._queue.get()
            if self._queue.qsize() < len(self._senders):
                self._wake_claimer.set()
            if self._lease_short(item):
                self._let_go(item)
                item.claim.open -= 1
                continue

            in_data = False

            async def data_ok(item: _InHand = item) -> bool:
                # The envelope went out while the last acceptance was being written; the
                # mail itself only once it is, and while its lease still holds.
                nonlocal in_data
                await written()
                in_data = not self._lease_short(item)
                self._in_data += in_data
                return in_data

            try:
                answer = await self._send(sender, item, data_ok)
            finally:
                self._let_go(item)
                self._in_data -= in_data
            if answer is None:  # withheld before DATA: left to be claimed again
                item.claim.open -= 1
                continue
            pending = _Pending(answer, item.claim)
            self._answers.append(pending)
            self._wake_writer.set()
            if answer.status == "sent":
                last_sent = pending.written

    def _lease_short(self, item: _InHand) -> bool:
        """Its lease could run out while it is being sent (the writer could not extend
        it): left to be claimed again rather than risk two senders."""
        return time.monotonic() > item.leased_until - self._lease_s / 4

    def _let_go(self, item: _InHand) -> None:
        """No longer held (a later claim of the same mail may be: it stays)."""
        if self._held.get(item.mail.id) is item:
            del self._held[item.mail.id]

    async def _send(
        self, sender: SmtpSender, item: _InHand, before_data: Callable[[], Awaitable[bool]]
    ) -> Answer | None:
        mail, envelope = item.mail, item.claimed.envelope
        result = await sender.send(envelope.mail_from, mail.rcpt_to, envelope.content, before_data)
        if result.withheld:
            return None
        attempt = mail.attempts + 1
        if result.ok:
            status, error = "sent", None
        elif result.permanent or attempt >= self._max_attempts:
            status, error = "failed", result.error
        else:
            status, error = "retry", result.error or "transient"
        MAILS.labels(mail.kind, status).inc()
        delay = 0.0
        if status == "retry":
            delay = min(self._max_backoff_s, self._base_backoff_s * 2**mail.attempts)
        return Answer(mail.id, attempt, status, error, delay)

    # --- writing answers ---------------------------------------------------------------

    async def _write_pass(self, held: _Held) -> None:
        """Write every answer in hand in one statement (a failed write keeps them for
        the next pass), and extend the leases that need it."""
        await _woken(self._wake_writer, min(1.0, self._lease_s / 4))
        self._wake_writer.clear()
        # Connections past DATA answer soon, without waiting for this write (a lane
        # waits for it only before its next DATA): their answers go in the same write.
        until = time.monotonic() + self._write_wait_s
        while self._answers and self._in_data and (left := until - time.monotonic()) > 0:
            await _woken(self._wake_writer, left)
            self._wake_writer.clear()
        if not self._answers and not self._held:
            report_progress(self._health["writer"])
            return
        conn = await held.acquire()
        await self._extend_leases(conn)
        batch = list(self._answers)
        if not batch:
            report_progress(self._health["writer"])
            return
        await mail_queue.write_answers(
            conn, [p.answer for p in batch], finalized=self._hooks is None
        )
        del self._answers[: len(batch)]
        now = time.monotonic()
        waiting = bool(self._finished)
        for p in batch:
            if not p.written.done():
                p.written.set_result(None)
            p.claim.open -= 1
            self._claims_done |= p.claim.open <= 0
            if self._hooks is not None and p.answer.status != "retry":
                self._finished.setdefault(p.answer.mail_id, now)
        # The finisher is woken when it has to finish now, or to start counting the
        # delay of the first answers it waits for (it keeps that time itself): not
        # after every write.
        if self._finished and (not waiting or self._finish_now()):
            self._wake_finisher.set()
        report_progress(self._health["writer"])

    async def _extend_leases(self, conn: asyncpg.Connection) -> None:
        now = time.monotonic()
        due = [h for h in self._held.values() if h.leased_until - now < self._lease_s / 2]
        if due:
            await mail_queue.extend_lease(conn, [h.mail.id for h in due], self._lease)
            for h in due:
                h.leased_until = now + self._lease_s

    # --- finishing ---------------------------------------------------------------------

    async def _finish_pass(self, held: _Held) -> None:
        """Run the hook for the answers written, when enough wait or the worker has
        nothing else in hand; sweep for what a crash left now and then."""
        self._wake_finisher.clear()
        if self._swept_at is None or time.monotonic() - self._swept_at > self._sweep_every_s:
            await self.finalize(held=held)  # first of all, what an earlier process left
            self._swept_at = time.monotonic()
        if self._finished and self._finish_now():
            self._claims_done = False
            ids = list(self._finished)
            await self._finish(held, ids)
            for i in ids:
                self._finished.pop(i, None)
            report_progress(self._health["finisher"])
            return
        report_progress(self._health["finisher"])
        timeout = 1.0
        if self._finished:
            timeout = max(0.0, self._oldest() + self._finalize_delay_s - time.monotonic())
        await _woken(self._wake_finisher, timeout)

    def _finish_now(self) -> bool:
        idle = not self._held and not self._answers
        return (
            idle
            or self._claims_done
            or len(self._finished) >= self._finalize_every
            or time.monotonic() - self._oldest() >= self._finalize_delay_s
        )

    def _oldest(self) -> float:
        """When the longest-waiting answer was written (`_finished` is in that order)."""
        return next(iter(self._finished.values()))

    async def _finish(self, held: _Held, ids: Sequence[int]) -> None:
        """`on_final` for `ids` (those still unfinalized) in one transaction with marking
        them finalized. If the hook raises, the transaction is rolled back and the mails
        are finished one by one instead (`_finish_each`)."""
        assert self._hooks is not None
        try:
            async with UnitOfWork(held, self._db.schema) as uow:
                done = await mail_queue.take_finished(uow.conn, ids)
                if done:
                    await self._hooks.on_final(uow, done)
                await uow.commit()
            return
        except DB_ERRORS:
            raise
        except Exception as exc:
            # One mail's hook must not hold back every other mail's outcome.
            log.error("finishing mails failed; one at a time", error=repr(exc))
        async with UnitOfWork(held, self._db.schema) as uow:
            done = await mail_queue.take_finished(uow.conn, ids)
            await self._finish_each(uow, done)
            await uow.commit()

    async def finalize(self, limit: int = 1000, *, held: _Held | None = None) -> int:
        """The sweep: run `on_final` for mails marked sent or failed and not yet
        finalized, in one transaction with marking them finalized: what a crash (of
        this process or another replica) left between an answer and its hook. On the
        finisher's kept connection when it sweeps, else on one from the pool."""
        pool = held if held is not None else self._db.pool
        async with UnitOfWork(pool, self._db.schema) as uow:
            done = await mail_queue.unfinalized(uow.conn, limit)
            if not done:
                return 0
            if self._hooks is not None:
                mark = uow.outbox_mark()
                try:
                    async with uow.conn.transaction():  # a savepoint
                        await self._hooks.on_final(uow, done)
                except DB_ERRORS:
                    raise
                except Exception as exc:
                    uow.rewind_outbox(mark)
                    log.error("finishing mails failed; one at a time", error=repr(exc))
                    await self._finish_each(uow, done)
            await mail_queue.mark_finalized(uow.conn, [m.id for m in done])
            await uow.commit()
        return len(done)

    async def _finish_each(self, uow: UnitOfWork, mails: Sequence[QueuedMail]) -> None:
        """Run `on_final` per mail; a mail whose hook raises is marked finalized with the
        error kept in `last_error` and logged, so it never blocks the queue again."""
        assert self._hooks is not None
        for mail in mails:
            mark = uow.outbox_mark()
            try:
                async with uow.conn.transaction():
                    await self._hooks.on_final(uow, [mail])
            except DB_ERRORS:
                raise
            except Exception as exc:
                uow.rewind_outbox(mark)
                reason = f"finishing failed: {type(exc).__name__}: {exc}"[:2000]
                log.error("mail could not be finished", mail_id=mail.id, error=reason)
                await mail_queue.note_error(uow.conn, mail.id, reason)


async def _woken(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set or `seconds` pass (`asyncio.wait_for` would make a task
    per wait: the writer waits once per write)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
