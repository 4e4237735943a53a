"""X8 through the real HTTP route: `/readyz` of a running service answers 503 with the
reason within seconds of a consumer failing, and 200 again once it recovers."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from shared.db import Database
from shared.health import Health
from shared.runtime import Runtime
from tests.component.shared.conftest import settings_for
from tests.conftest import eventually
from tools.devstack.stack import free_port


class Ping(BaseModel):
    id: str
    n: int


async def test_x8_readyz_turns_503_within_seconds_of_a_consumer_failing_and_back(
    stack, db: Database
) -> None:
    topic = f"ready-{uuid.uuid4().hex[:6]}"
    broken = {"now": False}

    async def handler(items, uow) -> None:
        if broken["now"]:
            raise ConnectionRefusedError("database refused the connection")
        await uow.conn.executemany(
            "INSERT INTO applied (id, n) VALUES ($1, $2)",
            [(i.message.id, i.message.n) for i in items],
        )

    port = free_port()
    settings = settings_for(stack).model_copy(
        update={"database_url": stack.dsn, "http_port": port, "api_keys": ""}
    )
    rt = Runtime(db.schema, settings, health=Health())
    rt.kafka.subscribe(topic, Ping, handler, consumer=f"ready.{topic}")
    serving = asyncio.create_task(rt.serve())
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def status(expected: int):
                try:
                    r = await http.get(url)
                except httpx.TransportError:
                    return None
                return r.json() if r.status_code == expected else None

            await eventually(lambda: status(200), timeout_s=30)
            broken["now"] = True
            failed_at = time.monotonic()
            await producer.send_and_wait(topic, b'{"id": "r", "n": 1}', key=b"k")
            body = await eventually(lambda: status(503), timeout_s=15)
            assert time.monotonic() - failed_at < 15
            assert body["ready"] is False
            assert "database refused the connection" in body["checks"][f"ready.{topic}"]
            broken["now"] = False
            body = await eventually(lambda: status(200), timeout_s=15)
            assert body["checks"][f"ready.{topic}"] is True
    finally:
        rt.stop()
        await asyncio.wait_for(serving, 30)
        await producer.stop()
