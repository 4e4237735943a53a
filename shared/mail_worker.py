"""The worker that sends a service's mail queue (shared/db/mail_queue.py) over SMTP.

The worker claims due mails with `FOR UPDATE SKIP LOCKED` and marks them `sending` in a
committed transaction *before* talking to SMTP, then `sent` or `failed` after (A9):

- 2xx: `sent`; 5xx: `failed` with the server's answer (permanent);
- 4xx or a lost connection: back to `pending` with exponential backoff, up to a limit;
- each result is marked the moment the server answers, so a crash between the SMTP
  answer and that mark leaves only that one mail `sending`; after its lease runs out it
  is sent again with the same Message-ID. That is the one remaining window for a
  duplicate (documented in docs/operations.md and docs/rules.md).

A service takes part through `MailHooks`: `admit` runs in the unit of work that claims
due mails (to hold mails back, e.g. the per-account sending limit, A8) and `on_final`
once per finished mail, in the unit of work that marks it finalized (e.g. to publish an
alert outcome; a crash before that runs it on the next pass). Both write their outputs
through that unit of work, so they commit with it. Without hooks every claimed mail is
sent and nothing more happens when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import asyncpg

from shared.db import mail_queue
from shared.db.errors import DB_ERRORS
from shared.db.mail_queue import QueuedMail
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
        finalize_every: int = 10,
    ) -> None:
        self._db = db
        self._senders = list(senders)
        self._hooks = hooks
        self._batch_size = batch_size
        self._lease = lease
        self._max_attempts = max_attempts
        self._base_backoff_s = base_backoff_s
        self._max_backoff_s = max_backoff_s
        self._idle_poll_s = idle_poll_s
        self._finalize_every = finalize_every
        self._wakes: list[asyncio.Event] = []
        self._unmarked: dict[int, tuple[str, str | None]] = {}

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

    async def _claim(self) -> list[QueuedMail]:
        async with self._db.uow() as uow:
            mails = await mail_queue.claim_due(uow.conn, self._batch_size)
            if mails and self._hooks is not None:
                admitted = await self._hooks.admit(uow, mails)
                mails = [m for m in mails if m.id in admitted]
            if mails:
                await mail_queue.mark_sending(uow.conn, [m.id for m in mails], self._lease)
            await uow.commit()
        return mails

    async def send_due(self, sender: SmtpSender | None = None) -> int:
        """Send one batch of due mails; returns how many were attempted.

        Each mail's result is written the moment the server has answered (one small
        autocommitted UPDATE, durably committed: neither a crash of this process nor one
        of PostgreSQL loses a mark), so a crash resends at most the one mail in flight
        (A9). Hooks run afterwards in `finalize()`."""
        sender = sender or self._senders[0]
        if self._unmarked:
            async with self._db.pool.acquire() as conn:
                for mail_id in list(self._unmarked):
                    if mail_id in self._unmarked:
                        await self._mark(conn, mail_id)
        mails = await self._claim()
        if not mails:
            return 0
        claimed_at = time.monotonic()
        async with self._db.pool.acquire() as conn:
            envelopes = await mail_queue.envelopes(conn, [m.id for m in mails])
            unfinalized = 0
            for n, mail in enumerate(mails):
                if time.monotonic() - claimed_at > self._lease.total_seconds() / 2:
                    # A slow server must not let the lease of the rest run out (another
                    # worker would claim and send them too).
                    await mail_queue.extend_lease(conn, [m.id for m in mails[n:]], self._lease)
                    claimed_at = time.monotonic()
                if await self._send_one(conn, sender, mail, envelopes[mail.id]):
                    unfinalized += 1
                    if unfinalized >= self._finalize_every:
                        # Publish outcomes as mails finish, not only at the end of a claim.
                        await self.finalize()
                        unfinalized = 0
        await self.finalize()
        return len(mails)

    async def _send_one(
        self,
        conn: asyncpg.Connection,
        sender: SmtpSender,
        mail: QueuedMail,
        envelope: mail_queue.Envelope,
    ) -> bool:
        """Send one mail and write the answer; True when the mail is done for good."""
        result = await sender.send(envelope.mail_from, mail.rcpt_to, envelope.content)
        if result.ok:
            status, error = "sent", None
        elif result.permanent or mail.attempts + 1 >= self._max_attempts:
            status, error = "failed", result.error
        else:
            status, error = "retry", result.error or "transient"
        MAILS.labels(mail.kind, status).inc()
        if status == "retry":
            delay = min(self._max_backoff_s, self._base_backoff_s * 2**mail.attempts)
            await mail_queue.retry_later(conn, mail.id, delay, error)
            return False
        # Remember the answer until it is written: if the database is gone now, the mark
        # is retried before anything else is claimed, so a database restart does not
        # make this worker send the mail again.
        self._unmarked[mail.id] = (status, error)
        await self._mark(conn, mail.id)
        return True

    async def _mark(self, conn: asyncpg.Connection, mail_id: int) -> None:
        """Write a remembered answer. Several send loops share `_unmarked`, so two may
        write the same mark (`mark_answered` makes the second a no-op)."""
        status, error = self._unmarked[mail_id]
        await mail_queue.mark_answered(conn, mail_id, status, error)
        self._unmarked.pop(mail_id, None)

    async def finalize(self, limit: int = 1000) -> int:
        """Run `on_final` for mails marked sent or failed and not yet finalized, in one
        transaction with marking them finalized. Also picks up what a crash left."""
        async with self._db.uow() as uow:
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
                    # One mail's hook must not hold back every other mail's outcome:
                    # run them one by one, and set aside only those that still fail.
                    log.error("finishing mails failed; one at a time", error=repr(exc))
                    done = await self._finalize_each(uow, done)
            await mail_queue.mark_finalized(uow.conn, [m.id for m in done])
            await uow.commit()
        return len(done)

    async def _finalize_each(
        self, uow: UnitOfWork, mails: Sequence[QueuedMail]
    ) -> list[QueuedMail]:
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
        return list(mails)

    async def run(self) -> None:
        """Send until cancelled, one loop per SMTP connection. The loops claim disjoint
        mails (SKIP LOCKED), so a slow answer on one connection does not hold the rest.
        Idle loops sleep until a new mail is notified (or a second passes: retries and
        deferred mails fall due without a notification)."""
        loops = asyncio.gather(*(self._loop(sender) for sender in self._senders))
        listening = asyncio.create_task(
            listen_forever(self._db.pool, f"mail_{self._db.schema}", self._on_notify)
        )
        try:
            await loops
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    def _on_notify(self, *_args: object) -> None:
        for wake in self._wakes:
            wake.set()

    async def _loop(self, sender: SmtpSender) -> None:
        wake = asyncio.Event()
        self._wakes.append(wake)
        failures = 0
        try:
            while True:
                wake.clear()  # before claiming: a mail queued from now on wakes this loop
                try:
                    sent = await self.send_due(sender) or await self.finalize()
                    failures = 0
                    report_progress(f"mail.{self._db.schema}")
                except DB_ERRORS as exc:
                    log.warning("mail worker failed; retrying", error=str(exc))
                    report_trouble(f"mail.{self._db.schema}", f"database: {exc}")
                    await asyncio.sleep(1.0)
                    continue
                except Exception as exc:
                    # Never die: a failure here stopped confirmation mail for every
                    # account. Log it, back off, try again; readiness hears of it.
                    failures += 1
                    log.exception("mail worker pass failed; retrying", error=repr(exc))
                    report_trouble(f"mail.{self._db.schema}", f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
                    continue
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self._idle_poll_s)
        finally:
            with contextlib.suppress(Exception):
                await sender.close()
