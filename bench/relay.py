"""`python -m bench.relay`: the outbox relay's cost per row, without a service around it.

Commits batches of outbox rows shaped like the consent service's (`consent-changes`,
one key per profile over 4 partitions, a 900-byte value and trace headers) through the
unit of work on an embedded PostgreSQL, then lets one `OutboxRelay` publish them to the
embedded broker, and reports the relay's CPU per row (this process: the claim, the
producer and the wait for the broker's acknowledgements) and PostgreSQL's (postmaster
and backends). Writing the rows is not timed. Run it on two versions of `shared` (with
`PYTHONPATH`) to compare them on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench import costs
from shared.contracts import topics
from shared.db import Database
from shared.db.migrations import migrate
from shared.db.outbox import OutboxRelay
from shared.messaging.admin import ensure_topics
from shared.messaging.clients import make_producer
from shared.settings import Settings
from tools.devstack import free_port
from tools.devstack.broker import TansuBroker
from tools.devstack.postgres import EmbeddedPostgres

VALUE = json.dumps({"payload": "x" * 880}).encode()
HEADERS = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "x-consentflow-input": "consent-commands:0:0",
}


async def _write(db: Database, start: int, count: int) -> None:
    for first in range(start, start + count, 1000):
        async with db.uow() as uow:
            for n in range(first, min(first + 1000, start + count)):
                uow.publish(topics.CONSENT_CHANGES, f"p-{n}", VALUE, HEADERS)
            await uow.commit()


async def measure(rows: int, rounds: int) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        broker = TansuBroker(free_port(), Path(tmp) / "broker.log")
        pg = EmbeddedPostgres(Path(tmp) / "pgdata")
        broker.start()
        dsn = pg.start()
        try:
            await ensure_topics(broker.bootstrap, 4)
            await migrate(dsn, "consent")
            settings = Settings(
                database_url=dsn,
                kafka_bootstrap_servers=broker.bootstrap,
                kafka_enable_idempotence=False,
            )
            db = Database(dsn, "consent", 2)
            await db.start()
            producer = make_producer(settings, "bench-relay")
            await producer.start()
            postmaster = pg.postmaster_pid
            assert postmaster is not None, "the server is running"
            out = []
            try:
                relay = OutboxRelay(db.pool, producer, db.schema)
                await _write(db, 0, 1000)  # warm: metadata, prepared statements
                while await relay.publish_pending():
                    pass
                for r in range(rounds):
                    await _write(db, (r + 1) * rows, rows)
                    pg0 = costs.cpu_seconds(postmaster, with_children=True)
                    c0, t0 = time.process_time(), time.perf_counter()
                    sent = 0
                    while n := await relay.publish_pending():
                        sent += n
                    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
                    pg_cpu = costs.cpu_seconds(postmaster, with_children=True) - pg0
                    assert sent == rows, (sent, rows)
                    out.append(
                        {
                            "relay_us_per_row": 1e6 * cpu / rows,
                            "postgres_us_per_row": 1e6 * pg_cpu / rows,
                            "rows_per_s": rows / wall,
                        }
                    )
            finally:
                await producer.stop()
                await db.close()
            return out
        finally:
            pg.stop()
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for r in asyncio.run(measure(args.rows, args.rounds)):
        print(
            f"relay {r['relay_us_per_row']:.1f} µs CPU per row, PostgreSQL"
            f" {r['postgres_us_per_row']:.1f} µs, {r['rows_per_s']:,.0f} rows/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
