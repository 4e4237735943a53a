"""Fixtures for the shared messaging tests: a fresh schema with the messaging tables, and
a batch consumer run the way a service runs it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from importlib import resources

import pytest

from shared.consumer import TopicConsumer
from shared.db import Database
from shared.health import Health
from shared.kafka import BatchConsumer
from shared.settings import Settings


@pytest.fixture
async def db(stack):
    schema = f"t_{uuid.uuid4().hex[:8]}"
    database = Database(stack.dsn, schema, 4)
    await database.start()
    files = sorted(f for f in resources.files("shared.db.sql").iterdir() if f.name.endswith(".sql"))
    async with database.pool.acquire() as conn:
        for sql in files:
            await conn.execute(sql.read_text())
        await conn.execute("CREATE TABLE applied (id text PRIMARY KEY, n int)")
    try:
        yield database
    finally:
        async with database.pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await database.close()


@contextlib.asynccontextmanager
async def consuming(
    settings: Settings, topic: str, batch: BatchConsumer, health: Health | None = None
) -> AsyncIterator[TopicConsumer]:
    """`batch` reading `topic` in its own group, as a service runs it."""
    consumer = TopicConsumer(
        settings, topic, batch, group=f"test.{topic}", client_id="test", health=health or Health()
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


def settings_for(stack) -> Settings:
    return Settings(
        kafka_bootstrap_servers=stack.broker.bootstrap,
        kafka_enable_idempotence=False,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
    )
