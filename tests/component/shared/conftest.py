"""Fixtures for the shared messaging tests: a fresh schema with the messaging tables, and
a batch consumer run the way a service runs it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from importlib import resources

import pytest
from aiokafka.admin import NewTopic
from pydantic import BaseModel

from shared.db import Database
from shared.health import Health
from shared.messaging.batches import BatchApplier
from shared.messaging.clients import make_admin
from shared.messaging.edge import KafkaEdge, Subscription
from shared.settings import Settings


@contextlib.asynccontextmanager
async def fresh_schema(stack, prefix: str = "t", pool_size: int = 4) -> AsyncIterator[Database]:
    """A database in a schema of its own with the tables every service has (outbox,
    inbox, mail queue), dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    database = Database(stack.dsn, schema, pool_size)
    await database.start()
    files = sorted(f for f in resources.files("shared.db.sql").iterdir() if f.name.endswith(".sql"))
    async with database.pool.acquire() as conn:
        for sql in files:
            await conn.execute(sql.read_text())
    try:
        yield database
    finally:
        async with database.pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await database.close()


@pytest.fixture
async def db(stack):
    async with fresh_schema(stack) as database:
        async with database.pool.acquire() as conn:
            await conn.execute("CREATE TABLE applied (id text PRIMARY KEY, n int)")
        yield database


@contextlib.asynccontextmanager
async def consuming(
    settings: Settings,
    topic: str,
    batch: BatchApplier,
    health: Health | None = None,
    consumers: int = 1,
) -> AsyncIterator[Subscription]:
    """`batch` reading `topic` in its own group through `consumers` FastStream
    subscribers, as a service runs it (`shared.messaging.edge`)."""
    edge = KafkaEdge(settings, "test", batch.db, health or Health())
    subscription = edge.attach(topic, batch, BaseModel, group=f"test.{topic}", consumers=consumers)
    await edge.start()
    try:
        yield subscription
    finally:
        await edge.stop()


def settings_for(stack) -> Settings:
    return Settings(
        kafka_bootstrap_servers=stack.broker.bootstrap,
        kafka_enable_idempotence=False,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
    )


async def create_topic(settings: Settings, topic: str, partitions: int) -> None:
    """Create `topic` with `partitions` on the stack's broker."""
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()
