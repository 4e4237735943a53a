"""The embedded stack itself: broker, PostgreSQL and SMTP capture are real and reachable."""

import asyncpg

from shared.contracts import topics
from tests.conftest import Kafka, eventually


async def test_x2_stack_has_topics_and_migrated_schemas(stack, kafka: Kafka) -> None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
        assert {"consent", "suppression", "flow_executor", "alert_dispatcher"} <= schemas
        applied = await conn.fetchval("SELECT count(*) FROM flow_executor.schema_migrations")
        assert applied >= 2
    finally:
        await conn.close()
    await kafka.send(topics.PROFILE_EVENTS + ".dlq", "k", {"probe": True})
    got = await eventually(lambda: kafka.read_all(topics.PROFILE_EVENTS + ".dlq"))
    assert ("k", {"probe": True}) in got
