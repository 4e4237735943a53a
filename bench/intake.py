"""`python -m bench.intake [--service flow_executor|consent]`: a service's cost per
message of its main input without Kafka.

Feeds batches of bench messages straight to the service's own consumer (as its
`app.build` wires it: parser, inbox, handler, outbox) on an embedded PostgreSQL: the flow
executor's `profile-events` (bench events, 10 % raising an alert) or the consent
service's `consent-commands` (SMS form subscribes of new profiles, each one a consent
change). It reports CPU seconds per 1,000 messages of this process and of the PostgreSQL
backend, and the statements and rows per batch. Without a broker and idle consumers
polling it, this is the steady number to compare two versions of a service with, on a
busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from bench import costs, product
from bench.stages import Stages, split_database, table
from services.consent import app as consent_app
from services.flow_executor import app as executor_app
from services.flow_executor.adapters import repository as repo
from shared import heap
from shared.contracts import FlowDefinition, topics
from shared.db.migrations import migrate_all
from shared.messaging.batches import BatchApplier
from shared.runtime import Runtime
from shared.settings import Settings
from tools.devstack.postgres import EmbeddedPostgres


class _Capture(Runtime):
    """A runtime that keeps the batch consumers `build` registers."""

    def __init__(self, service: str, settings: Settings) -> None:
        super().__init__(service, settings)
        self.captured: dict[str, BatchApplier] = {}

    def capture(self) -> None:
        """Keep what `build` declared on the Kafka edge, by topic."""
        self.captured = {s.topic: s.batch for s in self.kafka.subscriptions}


def _message(service: str, i: int, tag: str, unmatched: int = 0) -> tuple[bytes, bytes]:
    if service == "consent":
        return product.consent_command(i, tag)
    if not unmatched:
        key, value, _ = product.event(i, tag, i % 10 == 0)  # one in 10 raises an alert
        return key, value
    # Of every 10 events, the first `unmatched` are of a metric no flow listens to (page
    # views, say); of the others, one in 10 raises an alert.
    other = i % 10 < unmatched
    key, value, _ = product.event(
        i, tag, not other and (i // 10) % 10 == 0, "Viewed Page" if other else "Left NPS Score"
    )
    return key, value


def _records(
    service: str, n: int, batch: int, tag: str, unmatched: int = 0
) -> list[tuple[ConsumerRecord, ...]]:
    topic = INPUTS[service]
    out = []
    for start in range(0, n, batch):
        recs = []
        for i in range(start, min(n, start + batch)):
            key, value = _message(service, i, tag, unmatched)
            recs.append(
                ConsumerRecord(topic, 0, i, 0, 0, key, value, None, len(key), len(value), [])
            )
        out.append(tuple(recs))
    return out


INPUTS = {"flow_executor": topics.PROFILE_EVENTS, "consent": topics.CONSENT_COMMANDS}
BUILDS = {"flow_executor": executor_app.build, "consent": consent_app.build}


async def measure(
    service: str,
    dsn: str,
    n: int,
    batch: int,
    rounds: int,
    unmatched: int = 0,
    settle: bool = True,
    stages: bool = True,
) -> dict[str, Any]:
    rt = _Capture(
        service,
        Settings(
            database_url=dsn,
            link_secret="bench-intake-link-secret",
            privacy_hash_secret="bench-intake-privacy-secret",
            database_pool_size=1,
        ),
    )
    BUILDS[service](rt)
    rt.capture()
    consumer = rt.captured[INPUTS[service]]
    await rt.db.start()
    try:
        async with rt.db.pool.acquire() as conn:
            if service == "flow_executor":
                await repo.PostgresFlowRepository(conn).save_flow(
                    FlowDefinition.model_validate(product.flow())
                )
            backend = await conn.fetchval("SELECT pg_backend_pid()")
        me = os.getpid()
        # The measured batches are made up front, so that making them is not measured,
        # and before the heap is settled, so that holding them costs the collector
        # nothing a service would not pay.
        measured = [_records(service, n, batch, f"r{r}", unmatched) for r in range(rounds)]
        # A first pass warms caches (statements prepared, flow parsed); the executor's
        # profiles it creates are then updated, as in steady state.
        for records in _records(service, n, batch, "warm", unmatched):
            await consumer.handle(records)
        if settle:  # as `Runtime.serve` does once the service has started
            heap.settle()
        stage_cpu = Stages()
        await costs.reset_statements(dsn)
        runs = []
        with stage_cpu.instrument(consumer) if stages else contextlib.nullcontext():
            for batches in measured:
                c0, p0, t0 = (
                    costs.cpu_seconds(me),
                    costs.cpu_seconds(backend),
                    time.perf_counter(),
                )
                for records in batches:
                    await consumer.handle(records)
                runs.append(
                    {
                        "service_cpu_s_per_1000": 1000 * (costs.cpu_seconds(me) - c0) / n,
                        "postgres_backend_cpu_s_per_1000": 1000
                        * (costs.cpu_seconds(backend) - p0)
                        / n,
                        "messages_per_s": n / (time.perf_counter() - t0),
                    }
                )
        conn2 = await asyncpg.connect(dsn)
        try:
            rows = await conn2.fetch(
                # This role's only: on the bench's stack, the services run beside it.
                "SELECT query, calls, rows, total_exec_time AS ms FROM pg_stat_statements"
                " WHERE query NOT LIKE '%pg_stat_statements%'"
                " AND userid = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
                " ORDER BY calls DESC"
            )
        finally:
            await conn2.close()
        batches_n = rounds * len(_records(service, n, batch, "x"))
        best = min(runs, key=lambda x: x["service_cpu_s_per_1000"])
        measured_n = rounds * n
        database = split_database([dict(r) for r in rows])
        exec_ms = sum(d["ms"] for d in database.values()) or 1.0
        pg_us = 1e6 * sum(r["postgres_backend_cpu_s_per_1000"] for r in runs) / 1000 / len(runs)
        return {
            "stages_us": {k: 1e6 * v / measured_n for k, v in stage_cpu.cpu.items()}
            if stages
            else {},
            "stages_database": {
                stage: {
                    "rows": d["rows"] / measured_n,
                    "statements_per_batch": d["statements"] / batches_n,
                    # PostgreSQL's CPU per message, shared out by execution time.
                    "pg_us": pg_us * d["ms"] / exec_ms,
                }
                for stage, d in database.items()
            },
            "service": service,
            "messages": n,
            "batch": batch,
            "runs": runs,
            "best": best,
            "statements_per_batch": sum(r["calls"] for r in rows) / batches_n,
            "rows_per_batch": sum(r["rows"] for r in rows) / batches_n,
        }
    finally:
        await rt.db.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pgdata")
        dsn = pg.start()
        try:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(
                    "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
                )
            finally:
                await conn.close()
            pg.restart()
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            finally:
                await conn.close()
            await migrate_all(dsn)
            return await measure(
                args.service,
                dsn,
                args.messages,
                args.batch,
                args.rounds,
                args.unmatched,
                settle=not args.no_settle,
            )
        finally:
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__)
    parser.add_argument("--service", choices=sorted(INPUTS), default="flow_executor")
    parser.add_argument("--messages", "--events", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--unmatched",
        type=int,
        default=0,
        choices=range(10),
        help="flow executor: of every 10 events, how many are of a metric no flow listens to",
    )
    parser.add_argument(
        "--no-settle",
        action="store_true",
        help="leave the start-up heap to the collector (shared.heap), as before it was frozen",
    )
    args = parser.parse_args()
    found = asyncio.run(run(args))
    for r in found["runs"]:
        print(
            f"{found['service']} {r['service_cpu_s_per_1000']:.4f} s, PostgreSQL backend"
            f" {r['postgres_backend_cpu_s_per_1000']:.4f} s CPU per 1,000 messages"
            f" ({r['messages_per_s']:,.0f} messages/s)"
        )
    print(
        f"{found['statements_per_batch']:.1f} statements and {found['rows_per_batch']:.0f}"
        f" rows per batch of {found['batch']}"
    )
    if found["stages_us"]:
        print(table(found["service"], found["stages_us"], found["stages_database"]))
    print(json.dumps(found["best"]))


if __name__ == "__main__":
    main()
