"""The mail worker (shared/mail_worker.py) against the embedded PostgreSQL and a real
aiosmtpd relay on loopback (A9): answers written in batches, a connection's next mail
held until its last acceptance is written, connections kept across mails and claims,
and reopened at once when the relay dropped them."""

from __future__ import annotations

import asyncio
import contextlib
import email
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from shared.db import Database, mail_queue
from shared.mail import SmtpSender, compose
from shared.mail_worker import MailWorker
from shared.ports import OutgoingMail, QueuedMail
from shared.settings import Settings
from tests.component.shared.conftest import fresh_schema
from tests.conftest import eventually
from tools.devstack import free_port


class Relay:
    """An SMTP relay that records each mail it takes with the connection it came on,
    and answers mails to chosen recipients with a failure."""

    def __init__(self) -> None:
        self.taken: list[tuple[Any, str]] = []  # (client address, Message-ID)
        self.answer_for: dict[str, str] = {}
        self.envelopes = 0  # recipients given (RCPT TO), taken or not

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.envelopes += 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0]
        if rcpt in self.answer_for:
            return self.answer_for[rcpt]
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        self.taken.append((session.peer, str(msg["Message-ID"])))
        return "250 OK"

    def ids(self) -> Counter[str]:
        return Counter(mid for _, mid in self.taken)

    def connections(self) -> int:
        return len({peer for peer, _ in self.taken})


@pytest.fixture
async def db(stack: Any) -> AsyncIterator[Database]:
    """A fresh schema with the shared tables, and a pool as large as a service's (the
    worker keeps three connections and LISTENs on a fourth)."""
    async with fresh_schema(stack, "mw", 8) as database:
        yield database


@pytest.fixture
def relay() -> Any:
    handler = Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@dataclass
class _Session:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    dead: bool = False


@dataclass
class Proxy:
    """A TCP proxy in front of the relay that can drop every connection the way an idle
    connection gets dropped: the relay's side goes at once, the client's side is only
    found closed when the client next writes (its first command fails)."""

    upstream_port: int
    sessions: list[_Session] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for s in self.sessions:
            s.client.close()
            s.upstream.close()
        if self._server is not None:
            self._server.close()

    def drop(self) -> None:
        for s in self.sessions:
            s.dead = True
            s.upstream.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        session = _Session(writer, up_writer)
        self.sessions.append(session)

        async def down() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
            if not session.dead:
                writer.close()

        copying = asyncio.create_task(down())
        try:
            while data := await reader.read(65536):
                if session.dead:
                    break
                up_writer.write(data)
        finally:
            writer.close()
            up_writer.close()
            copying.cancel()


def _settings(port: int) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_s=5)


def _mails(n: int, account: str) -> list[OutgoingMail]:
    out = []
    for i in range(n):
        to = f"r{i}-{account}@acme.test"
        msg = compose(
            mail_from="alerts@acme.test",
            to=to,
            subject=f"mail {i}",
            text="hello",
            msg_id=f"<{account}-{i}@mail.test>",
        )
        out.append(OutgoingMail(f"{account}:{i}", "alert", account, msg, "alerts@acme.test", to))
    return out


async def _queue(db: Any, mails: Sequence[OutgoingMail]) -> dict[str, int]:
    async with db.pool.acquire() as conn:
        return await mail_queue.enqueue_many(conn, mails)


async def _rows(db: Any) -> list[asyncpg.Record]:
    async with db.pool.acquire() as conn:
        return await conn.fetch(
            "SELECT id, status, attempts, finalized, last_error FROM mail_queue ORDER BY id"
        )


async def _all(db: Any, status: str, n: int) -> list[asyncpg.Record]:
    async def probe() -> list[asyncpg.Record]:
        rows = await _rows(db)
        return rows if len(rows) == n and all(r["status"] == status for r in rows) else []

    return await eventually(probe, 20, 0.05)


@contextlib.asynccontextmanager
async def running(worker: MailWorker) -> AsyncIterator[MailWorker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _worker(db: Any, port: int, connections: int = 2, **kw: Any) -> MailWorker:
    senders = [SmtpSender(_settings(port)) for _ in range(connections)]
    kw.setdefault("lease", timedelta(seconds=30))
    kw.setdefault("idle_poll_s", 0.05)
    return MailWorker(db, senders, **kw)


async def test_a9_answers_of_several_connections_are_written_in_one_statement(
    db, relay, monkeypatch, account
) -> None:
    handler, port = relay
    writes: list[int] = []
    real = mail_queue.write_answers
    worker = _worker(db, port, connections=4)

    async def spy(conn: Any, answers: Sequence[Any], *, finalized: bool) -> None:
        if not writes:
            # Hold the first write until every connection has an answer in hand: the
            # answers the first write did not take go together in the second.
            await eventually(lambda: _ready(len(worker._answers) >= 4), 10, 0.01)
        writes.append(len(answers))
        await real(conn, answers, finalized=finalized)

    monkeypatch.setattr(mail_queue, "write_answers", spy)
    ids = await _queue(db, _mails(12, account))
    async with running(worker):
        rows = await _all(db, "sent", 12)
    assert sum(writes) == 12 and len(writes) < 12
    assert max(writes[:2]) >= 2, writes  # four answers in two writes
    assert all(r["attempts"] == 1 and r["finalized"] for r in rows)
    assert handler.ids() == Counter({f"<{account}-{i}@mail.test>": 1 for i in range(len(ids))})


@pytest.fixture
def held_writes(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Holds every write of the connections' answers until the event is set."""
    release = asyncio.Event()
    real = mail_queue.write_answers

    async def held_back(conn: Any, answers: Sequence[Any], *, finalized: bool) -> None:
        await release.wait()
        await real(conn, answers, finalized=finalized)

    monkeypatch.setattr(mail_queue, "write_answers", held_back)
    return release


async def _ready(value: bool) -> bool:
    return value


async def test_a9_a_connection_gives_the_relay_no_mail_before_its_last_acceptance_is_written(
    db, relay, held_writes, account
) -> None:
    """The crash window stays one mail per connection: while no answer can be written,
    each connection has handed the relay one mail and waits."""
    handler, port = relay
    await _queue(db, _mails(10, account))
    worker = _worker(db, port, connections=3)
    async with running(worker):
        try:
            # Every connection has an accepted mail waiting to be written ...
            await eventually(lambda: _ready(len(worker._answers) == 3), 10, 0.01)
            # ... and, with all three waiting for that, nothing more went out.
            assert len(handler.taken) == 3
        finally:
            held_writes.set()
        await _all(db, "sent", 10)
    assert len(handler.taken) == 10 and set(handler.ids().values()) == {1}


async def test_a9_the_next_envelope_goes_out_while_the_last_acceptance_is_written(
    db, relay, held_writes, account
) -> None:
    """While a connection's last acceptance is being written it already gives the relay
    the next mail's envelope (its round trips overlap the write), but not the mail: DATA
    waits for the write."""
    handler, port = relay
    await _queue(db, _mails(10, account))
    worker = _worker(db, port, connections=3)
    async with running(worker):
        try:
            await eventually(lambda: _ready(handler.envelopes == 6), 10, 0.01)
            assert len(handler.taken) == 3  # one mail per connection taken, three waiting
        finally:
            held_writes.set()
        await _all(db, "sent", 10)
    assert len(handler.taken) == 10 and set(handler.ids().values()) == {1}


async def test_a9_connections_are_kept_across_mails_and_claims(db, relay, account) -> None:
    handler, port = relay
    worker = _worker(db, port, connections=2, batch_size=3)
    async with running(worker):
        await _queue(db, _mails(9, account))
        await _all(db, "sent", 9)
        await _queue(db, _mails(18, account)[9:])  # a later wave, several claims
        await _all(db, "sent", 18)
    assert handler.connections() <= 2
    assert sum(s.connects for s in worker._senders) == handler.connections()


async def test_a9_refused_mails_keep_the_connection(db, relay, account) -> None:
    """A 5xx (failed for good) and a 4xx (retried later) reset the envelope; the next
    mail goes out on the same connection."""
    handler, port = relay
    mails = _mails(6, account)
    handler.answer_for[mails[0].rcpt_to] = "550 5.1.1 no such user"
    handler.answer_for[mails[1].rcpt_to] = "451 4.3.0 try later"
    worker = _worker(db, port, connections=1, base_backoff_s=30)
    await _queue(db, mails)
    async with running(worker):

        async def answered() -> list[asyncpg.Record]:
            rows = await _rows(db)
            done = [r for r in rows if r["status"] in ("sent", "failed", "pending")]
            return rows if len(done) == 6 and sum(r["status"] == "sent" for r in rows) == 4 else []

        rows = await eventually(answered, 20, 0.05)
    by_status = Counter(r["status"] for r in rows)
    assert by_status == {"sent": 4, "failed": 1, "pending": 1}
    assert [r["last_error"] for r in rows if r["status"] != "sent"] == [
        "550 5.1.1 no such user",
        "451 4.3.0 try later",
    ]
    assert worker._senders[0].connects == 1 and handler.connections() == 1


async def test_a9_a_connection_the_relay_dropped_is_reopened_at_once(db, relay, account) -> None:
    """An idle connection dropped by the relay is found dead at `MAIL FROM`, before the
    relay could take the mail: the mail goes out on a new connection at once, as its
    first attempt, not after a retry's backoff."""
    handler, port = relay
    proxy = Proxy(port)
    await proxy.start()
    try:
        worker = _worker(db, proxy.port, connections=2, base_backoff_s=30)
        mails = _mails(8, account)
        async with running(worker):
            await _queue(db, mails[:4])
            await _all(db, "sent", 4)
            before = handler.connections()
            proxy.drop()
            await _queue(db, mails[4:])
            rows = await _all(db, "sent", 8)
        assert all(r["attempts"] == 1 for r in rows)
        assert set(handler.ids().values()) == {1} and len(handler.ids()) == 8
        assert handler.connections() > before  # the second wave came on new connections
    finally:
        await proxy.stop()


async def test_a9_answers_survive_a_failed_write_and_are_not_sent_again(
    db, relay, monkeypatch, account
) -> None:
    """The database fails the first write: the answers stay in hand and are written on
    the next try; the relay never gets a mail twice."""
    handler, port = relay
    calls = 0
    real = mail_queue.write_answers

    async def flaky(conn: Any, answers: Sequence[Any], *, finalized: bool) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncpg.InterfaceError("connection lost (test)")
        await real(conn, answers, finalized=finalized)

    monkeypatch.setattr(mail_queue, "write_answers", flaky)
    await _queue(db, _mails(5, account))
    async with running(_worker(db, port, connections=2)):
        rows = await _all(db, "sent", 5)
    assert calls >= 2 and all(r["attempts"] == 1 for r in rows)
    assert len(handler.ids()) == 5 and set(handler.ids().values()) == {1}


class _Recording:
    """Hooks that admit everything and record what they were told was final."""

    def __init__(self) -> None:
        self.finished: list[list[int]] = []

    async def admit(self, uow: Any, claimed: Sequence[QueuedMail]) -> set[int]:
        return {m.id for m in claimed}

    async def on_final(self, uow: Any, finished: Sequence[QueuedMail]) -> None:
        self.finished.append([m.id for m in finished])


async def test_a9_each_answered_mail_is_finished_once_in_batches(db, relay, account) -> None:
    handler, port = relay
    mails = _mails(20, account)
    handler.answer_for[mails[3].rcpt_to] = "550 5.1.1 no such user"
    hooks = _Recording()
    ids = await _queue(db, mails)
    async with running(_worker(db, port, connections=4, hooks=hooks)):

        async def finished() -> list[asyncpg.Record]:
            rows = await _rows(db)
            done = [r for r in rows if r["status"] in ("sent", "failed") and r["finalized"]]
            return rows if len(done) == 20 else []

        rows = await eventually(finished, 20, 0.05)
    seen = [i for batch in hooks.finished for i in batch]
    assert sorted(seen) == sorted(ids.values())  # each once
    assert len(hooks.finished) < 20  # several per transaction
    assert Counter(r["status"] for r in rows) == {"sent": 19, "failed": 1}


async def test_a9_the_worker_goes_on_when_the_database_drops_its_connections(
    db, relay, account
) -> None:
    """As in a PostgreSQL restart: every connection of the service is cut. The worker
    takes new ones and goes on; nothing is sent twice."""
    handler, port = relay
    mails = _mails(8, account)
    worker = _worker(db, port, connections=2)
    task = asyncio.create_task(worker.run())
    try:
        await _queue(db, mails[:4])
        await _all(db, "sent", 4)
        admin = await asyncpg.connect(db.dsn)
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                f"consentflow-{db.schema}",
            )
        finally:
            await admin.close()
        assert cut >= 3  # the worker's kept connections and its LISTEN
        fresh = await asyncpg.connect(db.dsn, server_settings={"search_path": db.schema})
        try:
            await mail_queue.enqueue_many(fresh, mails[4:])
        finally:
            await fresh.close()
        rows = await _all(db, "sent", 8)
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert all(r["attempts"] == 1 for r in rows)
    assert len(handler.ids()) == 8 and set(handler.ids().values()) == {1}


async def test_a9_the_worker_stops_when_cancelled_in_the_middle_of_a_statement(
    db, relay, monkeypatch, account
) -> None:
    """Cancelled while the claimer's statement runs, the worker stops within seconds:
    the server may not act on the cancel request (it came before the statement), and
    the rollback behind it waits for the statement to end; a second cancellation
    (`shared.cancellation.stop_tasks`) ends that wait."""
    _, port = relay
    in_statement = asyncio.Event()
    real = mail_queue.claim_due

    async def slow(conn: Any, limit: int) -> Any:
        in_statement.set()
        await conn.execute("SELECT pg_sleep(30)")
        return await real(conn, limit)

    monkeypatch.setattr(mail_queue, "claim_due", slow)
    task = asyncio.create_task(_worker(db, port).run())
    await asyncio.wait_for(in_statement.wait(), 10)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done, "the worker did not stop within 10 s of being cancelled"
    assert task.cancelled()
