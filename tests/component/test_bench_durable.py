"""The bench's raw loop with consent's rows ((f), `bench.durable`), against the embedded
broker and PostgreSQL: every command it reads leaves its four rows in consent's own
tables and one keyed change on the sink, with the offsets committed, so that the rate it
reports is the rate of that work and not of a loop that skipped some of it."""

from __future__ import annotations

import json
import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import durable, product
from bench.raw import preload
from tests.conftest import Kafka

N = 30


async def test_the_floor_stores_four_rows_and_publishes_one_change_per_command(
    stack, kafka: Kafka
) -> None:
    tag = uuid.uuid4().hex[:6]
    source, sink = f"floor-in-{tag}", f"floor-out-{tag}"
    commands = [product.consent_command(i, tag) for i in range(N)]
    await preload(stack.broker.bootstrap, source, commands)
    conn = await durable.connect(stack.dsn)
    try:
        rate = await durable.durable_ceiling(stack.broker.bootstrap, conn, source, sink, N, 7)
        counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in durable.TABLES}
        states = {
            (r["profile_id"], r["phone_number"], r["receipt_sequence"])
            for r in await conn.fetch("SELECT * FROM consent_state")
        }
        history = await conn.fetch("SELECT act_id, receipt_id FROM consent_history")
    finally:
        await conn.close()
    assert rate > 0
    assert counts == dict.fromkeys(durable.TABLES, N)
    wanted = [json.loads(value) for _key, value in commands]
    assert states == {(c["profile"]["id"], c["profile"]["phone_number"], 1) for c in wanted}
    assert {(r["act_id"], r["receipt_id"]) for r in history} == {
        (c["command_id"], c["command_id"]) for c in wanted
    }

    changes = await kafka.read_all(sink)
    assert sorted(key for key, _value in changes) == sorted(key.decode() for key, _ in commands)
    assert all(value and value["profile_id"] == key for key, value in changes)

    widths = await durable.row_widths(stack.dsn, durable.SCHEMA)
    assert set(widths) == set(durable.TABLES) and all(w > 0 for w in widths.values())


async def test_the_floor_commits_its_offsets(stack) -> None:
    """Every batch's offsets are committed after its rows and its changes: the group has
    committed every record of the source when the loop returns."""
    tag = uuid.uuid4().hex[:6]
    source, group = f"floor-in-{tag}", f"floor-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(source, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    commands = [product.consent_command(i, tag) for i in range(N)]
    await preload(stack.broker.bootstrap, source, commands)
    conn = await durable.connect(stack.dsn)
    try:
        await durable.durable_ceiling(
            stack.broker.bootstrap, conn, source, f"floor-out-{tag}", N, 10, group_id=group
        )
    finally:
        await conn.close()
    assert await product.committed(stack.broker.bootstrap, group, source, 3) == N


def test_the_cores_needed_count_the_loops_processes_and_not_the_idle_services() -> None:
    need = durable.cores_needed(
        10_000,
        {"bench": 0.040, "postgres": 0.030, "broker": 0.020, "consent": 0.003, "smtp": 0.0},
        {"consent": 0.03},
    )
    assert need["us"] == {"bench": 40.0, "postgres": 30.0, "broker": 20.0}
    assert abs(need["cores"] - 0.9) < 1e-9
