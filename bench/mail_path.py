"""`python -m bench.mail_path`: the alert dispatcher's mail path without Kafka.

Alert requests are fed straight to the dispatcher's own `alert-requests` consumer (as
`app.build` wires it: parser, inbox, handler, outbox) and its mail worker sends them to
a real SMTP server on loopback, a process of its own as in `python -m bench` (the
aiosmtpd capture server, or Postfix's smtp-sink with `--smtp-sink`:
`bench.smtp_servers`), on an embedded PostgreSQL with `pg_stat_statements`. The
dispatcher logs in as a role of its own, so that only its statements are counted.

Each round queues `--alerts` alerts (two confirmed recipients each) and then lets the
worker drain them: it reports CPU seconds per 1,000 alerts of this process, of
PostgreSQL and of the SMTP server, statements and rows per alert of the dispatch and of
the mail path apart, and mails per second against a plain aiosmtplib loop to the same
server measured right before. `--rate` then offers alerts at a steady rate with the
worker running and reports request → outcome latency (fed to the consumer → its outcome
committed to the outbox; the relay's hop to Kafka is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from bench import smtp_servers
from bench.costs import cpu_seconds
from bench.product import RECIPIENTS, mail_steps, percentiles
from bench.raw import smtp_ceiling
from services.alert_dispatcher import app
from shared import heap
from shared.contracts import AlertContent, AlertRequested, Profile, topics
from shared.db.migrations import migrate_all
from shared.runtime import Runtime
from shared.settings import Settings
from tools.devstack import free_port
from tools.devstack.postgres import EmbeddedPostgres
from tools.devstack.processes import stop_process

ACCOUNT = "bench"
SCHEMA = "alert_dispatcher"
ROLE = "mail_path_dispatcher"


def _request(tag: str, n: int) -> AlertRequested:
    pid = f"p-{n % 5000}"
    return AlertRequested(
        alert_id=f"{tag}-{n}",
        account_id=ACCOUNT,
        flow_id="detractors",
        flow_version=1,
        step_id="alert",
        profile_id=pid,
        profile=Profile(id=pid, email=f"{pid}@example.com", first_name="Ada"),
        event={"score": 0},
        action=AlertContent(
            recipients=RECIPIENTS,
            from_email="alerts@acme.test",
            subject="Detractor {{ person.email }}",
            body="{{ person.first_name }} scored {{ event.score }}",
        ),
    )


def _records(tag: str, start: int, n: int) -> tuple[ConsumerRecord, ...]:
    out = []
    for i in range(start, start + n):
        r = _request(tag, i)
        key, value = r.profile_id.encode(), r.to_bytes()
        out.append(
            ConsumerRecord(
                topics.ALERT_REQUESTS, 0, i, 0, 0, key, value, None, len(key), len(value), []
            )
        )
    return tuple(out)


class _Capture(Runtime):
    """A runtime whose Kafka subscribers are fed by hand."""

    def consumer(self, topic: str) -> Any:
        return next(s.batch for s in self.kafka.subscriptions if s.topic == topic)


async def _prepare(admin: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.alert_actions (account_id, flow_id, step_id, flow_version,"
            " mode, recipients) VALUES ($1, 'detractors', 'alert', 1, 'live', $2)"
            " ON CONFLICT DO NOTHING",
            ACCOUNT,
            RECIPIENTS,
        )
        await conn.executemany(
            f"INSERT INTO {SCHEMA}.recipients (account_id, email, status, generation)"
            " VALUES ($1, $2, 'confirmed', 1) ON CONFLICT DO NOTHING",
            [(ACCOUNT, r) for r in RECIPIENTS],
        )
        await conn.execute(
            f"INSERT INTO {SCHEMA}.account_limits (account_id, alert_send_limit_per_hour)"
            " VALUES ($1, 100000000) ON CONFLICT DO NOTHING",
            ACCOUNT,
        )
    finally:
        await conn.close()


async def _statements(admin: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(admin)
    try:
        rows = await conn.fetch(
            "SELECT query, sum(calls) AS calls, sum(rows) AS rows FROM pg_stat_statements"
            " WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = $1)"
            " GROUP BY query ORDER BY sum(calls) DESC",
            ROLE,
        )
        return [
            {
                "query": " ".join(r["query"].split())[:140],
                "calls": int(r["calls"]),
                "rows": int(r["rows"]),
            }
            for r in rows
        ]
    finally:
        await conn.close()


async def _reset(admin: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


def _per_alert(stmts: list[dict[str, Any]], alerts: int) -> dict[str, Any]:
    return {
        "statements_per_alert": round(sum(s["calls"] for s in stmts) / alerts, 2),
        "rows_per_alert": round(sum(s["rows"] for s in stmts) / alerts, 2),
        "top": [
            {"query": s["query"], "per_alert": round(s["calls"] / alerts, 3)} for s in stmts[:14]
        ],
    }


async def _done(conn: asyncpg.Connection, tag: str) -> int:
    return int(
        await conn.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.alerts WHERE alert_id LIKE $1 AND status <> 'sending'",
            f"{tag}-%",
        )
    )


class Bench:
    def __init__(self, args: argparse.Namespace, dsn: str, admin: str, smtp_port: int) -> None:
        self.args = args
        self.admin = admin
        settings = Settings(
            database_url=dsn,
            link_secret="bench-mail-path-link-secret-0123456789",
            privacy_hash_secret="bench-mail-path-privacy-secret-0123",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            mail_connections=args.connections,
            mail_batch_size=args.claim,
        )
        self.rt = _Capture("alert_dispatcher", settings)
        app.build(self.rt)
        self.consumer = self.rt.consumer(topics.ALERT_REQUESTS)
        self.me = os.getpid()
        self.smtp_port = smtp_port

    async def _feed(self, tag: str, n: int) -> None:
        batch = self.args.batch
        for start in range(0, n, batch):
            await self.consumer.handle(_records(tag, start, min(batch, n - start)))

    async def drain(self, tag: str, postgres: int, smtp: int, n: int) -> dict[str, Any]:
        raw = await smtp_ceiling(self.smtp_port, 2 * n)
        await _reset(self.admin)
        c0, p0 = cpu_seconds(self.me), cpu_seconds(postgres, True)
        await self._feed(tag, n)
        dispatch = {
            "cpu_s_per_1000": round(1000 * (cpu_seconds(self.me) - c0) / n, 3),
            "postgres_cpu_s_per_1000": round(1000 * (cpu_seconds(postgres, True) - p0) / n, 3),
            **_per_alert(await _statements(self.admin), n),
        }
        await _reset(self.admin)
        watch = await asyncpg.connect(self.admin)
        c0, p0, s0 = (
            cpu_seconds(self.me),
            cpu_seconds(postgres, True),
            cpu_seconds(smtp),
        )
        t0 = time.perf_counter()
        worker = asyncio.create_task(self.rt.workers[0]())
        try:
            while await _done(watch, tag) < n:
                if worker.done():
                    worker.result()
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - t0
            c1, p1, s1 = (
                cpu_seconds(self.me),
                cpu_seconds(postgres, True),
                cpu_seconds(smtp),
            )
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await watch.close()
        mails = 2 * n / seconds
        return {
            "raw_smtp_mails_per_s": round(raw),
            "mails_per_s": round(mails),
            "ratio_to_raw": round(mails / raw, 3),
            "dispatch": dispatch,
            "mail": {
                "cpu_s_per_1000": round(1000 * (c1 - c0) / n, 3),
                "postgres_cpu_s_per_1000": round(1000 * (p1 - p0) / n, 3),
                "smtp_server_cpu_s_per_1000": round(1000 * (s1 - s0) / n, 3),
                **_per_alert(await _statements(self.admin), n),
            },
        }

    async def latency(self, tag: str, rate: float, seconds: float) -> dict[str, Any]:
        """Offer `rate` alerts a second for `seconds`, one small batch every 10 ms, with
        the worker running; time each alert from its batch being handed to the consumer
        until its outcome is in the outbox (heard by LISTEN, as the relay hears it)."""
        fed: dict[str, float] = {}
        seen: dict[str, float] = {}
        listener = await asyncpg.connect(self.admin)
        woken = asyncio.Event()
        await listener.add_listener(f"outbox_{SCHEMA}", lambda *_: woken.set())
        reader = await asyncpg.connect(self.admin)
        total = int(rate * seconds)
        stop = asyncio.Event()
        complete = asyncio.Event()

        async def watch() -> None:
            # Takes the outcomes off the outbox as the relay would: a commit seen, its
            # rows gone (reading by id would miss rows that commit out of id order).
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), 0.05)
                woken.clear()
                now = time.time()
                rows = await reader.fetch(
                    f"DELETE FROM {SCHEMA}.outbox WHERE topic = $1 RETURNING value",
                    topics.ALERT_OUTCOMES,
                )
                for r in rows:
                    seen.setdefault(json.loads(r["value"])["alert_id"], now)
                if len(seen.keys() & fed.keys()) >= total:
                    complete.set()

        worker = asyncio.create_task(self.rt.workers[0]())
        watcher = asyncio.create_task(watch())
        c0 = cpu_seconds(self.me)
        try:
            await asyncio.sleep(0.5)  # the worker's connections open
            started = time.perf_counter()
            i = 0
            tick = 0
            while i < total:
                tick += 1
                due = min(total, int(rate * 0.01 * tick))
                if due > i:
                    now = time.time()
                    for j in range(i, due):
                        fed[f"{tag}-{j}"] = now
                    await self.consumer.handle(_records(tag, i, due - i))
                    i = due
                await asyncio.sleep(max(0.0, started + 0.01 * tick - time.perf_counter()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(complete.wait(), 60)
            cpu = cpu_seconds(self.me) - c0
        finally:
            stop.set()
            await watcher
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await listener.close()
        try:
            steps = await mail_steps(reader, SCHEMA, fed, seen)
        finally:
            await reader.close()
        lat = [seen[a] - t for a, t in fed.items() if a in seen]
        return {
            "rate": rate,
            "alerts": total,
            "outcomes": len(lat),
            "cpu_s_per_1000": round(1000 * cpu / total, 3),
            **{f"{k}_ms": round(v * 1000, 1) for k, v in percentiles(lat).items()},
            "steps_p50_p99_ms": steps,
        }


async def _postgres(pg: EmbeddedPostgres) -> tuple[str, str]:
    """The admin DSN and the dispatcher's (its own role), pg_stat_statements loaded."""
    admin = pg.dsn
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        await conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
    finally:
        await conn.close()
    pg.restart()
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute(f'CREATE ROLE "{ROLE}" LOGIN SUPERUSER')
    finally:
        await conn.close()
    return admin, admin.replace("postgres:@", f"{ROLE}:@", 1)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-mail-path-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pgdata")
        pg.start()
        smtp_port = free_port()
        mail_dir = Path(tmp) / "mail"
        smtp = (
            smtp_servers.start_sink(Path(args.smtp_sink), smtp_port)
            if args.smtp_sink
            else smtp_servers.start_capture(smtp_port, mail_dir)
        )
        try:
            admin, dsn = await _postgres(pg)
            await migrate_all(admin)
            await _prepare(admin)
            postmaster = pg.postmaster_pid
            assert postmaster is not None, "the server is running"
            bench = Bench(args, dsn, admin, smtp_port)
            await bench.rt.db.start()
            try:
                server = smtp.pid
                # Warm-up: statements prepared, templates compiled, caches filled.
                await bench.drain("warm", postmaster, server, 100)
                heap.settle()  # as `Runtime.serve` does once the service has started
                rounds = []
                for r in range(args.rounds):
                    tag = f"r{r}-{uuid.uuid4().hex[:4]}"
                    rounds.append(await bench.drain(tag, postmaster, server, args.alerts))
                    shutil.rmtree(mail_dir, ignore_errors=True)
                    mail_dir.mkdir()
                curve = [
                    await bench.latency(f"lat{rate}", rate, args.seconds) for rate in args.rate
                ]
            finally:
                await bench.rt.db.close()
            return {"rounds": rounds, "latency": curve}
        finally:
            stop_process(smtp)
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mail_path", description=__doc__)
    parser.add_argument("--alerts", type=int, default=1000, help="alerts per drain round")
    parser.add_argument("--batch", type=int, default=200, help="alert requests per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--connections", type=int, default=Settings().mail_connections, help="MAIL_CONNECTIONS"
    )
    parser.add_argument("--claim", type=int, default=50, help="MAIL_BATCH_SIZE")
    parser.add_argument(
        "--rate", type=float, nargs="*", default=[100.0], help="alerts/s offered for latency"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--smtp-sink",
        metavar="BINARY",
        help="send to Postfix's smtp-sink (this binary), not the capture server"
        " (bench.smtp_servers)",
    )
    parser.add_argument("--out", type=Path, help="write the whole result to this JSON file")
    args = parser.parse_args()
    found = asyncio.run(run(args))
    if args.out:
        args.out.write_text(json.dumps(found, indent=1))
    for r in found["rounds"]:
        d, m = r["dispatch"], r["mail"]
        print(
            f"mails {r['mails_per_s']}/s = {r['ratio_to_raw']:.2f} of raw"
            f" {r['raw_smtp_mails_per_s']}/s;"
            f" CPU s/1000 alerts: dispatch {d['cpu_s_per_1000']}"
            f" (pg {d['postgres_cpu_s_per_1000']}),"
            f" mail {m['cpu_s_per_1000']} (pg {m['postgres_cpu_s_per_1000']},"
            f" smtp {m['smtp_server_cpu_s_per_1000']});"
            f" statements/alert dispatch {d['statements_per_alert']}"
            f" mail {m['statements_per_alert']};"
            f" rows/alert dispatch {d['rows_per_alert']} mail {m['rows_per_alert']}"
        )
    for c in found["latency"]:
        print(
            f"latency at {c['rate']:g} alerts/s: p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms"
            f" ({c['outcomes']}/{c['alerts']} outcomes, CPU {c['cpu_s_per_1000']} s/1000);"
            f" steps p50/p99 ms: {c['steps_p50_p99_ms']}"
        )
    last = found["rounds"][-1]
    print("mail path statements per alert (last round):")
    for s in last["mail"]["top"]:
        print(f"  {s['per_alert']:7.3f}  {s['query']}")


if __name__ == "__main__":
    main()
