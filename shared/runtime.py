"""Running one service: the composition root every `python -m services.<name>` uses.

A service's `app.build(rt)` registers its batch consumers, HTTP routes and background
workers on a `Runtime`; `serve()` then opens the database pool, the outbox producer, the
HTTP server and the broker, and on SIGTERM/SIGINT stops consuming first, lets the outbox
drain, and closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import uvicorn
from aiokafka import ConsumerRecord
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from shared.db import Database
from shared.db.outbox import OutboxRelay
from shared.db.retention import prune_forever
from shared.http import ApiAuth, health_routes
from shared.kafka import BatchConsumer, BatchHandler, make_broker, make_producer, subscribe
from shared.logging import configure_logging, get_logger
from shared.settings import Settings

log = get_logger(__name__)


class _Server(uvicorn.Server):
    # The runtime owns signal handling; uvicorn must not replace it.
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class Runtime:
    """What a service is made of; see the module docstring."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.db = Database(settings.database_url, name, settings.database_pool_size)
        self.broker = make_broker(settings, f"consentflow-{name}")
        self.auth = ApiAuth(settings)
        self.routes: list[BaseRoute] = []
        self.workers: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.on_start: list[Callable[[], Awaitable[None]]] = []
        self._stop = asyncio.Event()

    def consume(
        self,
        topic: str,
        parse: Callable[[ConsumerRecord], Any],
        handler: BatchHandler,
        message_id: Callable[[Any], str | None] | None = None,
        consumer: str | None = None,
    ) -> BatchConsumer:
        """Register a batch consumer of `topic` (consumer group `consentflow.<name>`)."""
        batch = BatchConsumer(
            consumer=consumer or f"{self.name}.{topic}",
            db=self.db,
            parse=parse,
            handler=handler,
            message_id=message_id,
        )
        subscribe(self.broker, self.settings, topic, batch)
        return batch

    async def ready(self) -> dict[str, bool]:
        broker_ok = False
        with contextlib.suppress(Exception):
            broker_ok = bool(await asyncio.wait_for(self.broker.ping(timeout=2), 3))
        return {"database": await self.db.ping(), "broker": broker_ok}

    def stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        """Run until stopped; see the module docstring for the order of things."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        await self.db.start()
        # aiokafka clients must be created inside the running loop.
        self.producer = make_producer(self.settings, f"consentflow-{self.name}-outbox")
        await self.producer.start()
        app = Starlette(routes=[*health_routes(self.ready), *self.routes])
        server = _Server(
            uvicorn.Config(
                app,
                host=self.settings.http_host,
                port=self.settings.http_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        relay = OutboxRelay(self.db.pool, self.producer, self.db.schema)
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(relay.run(), name="outbox"),
            asyncio.create_task(
                prune_forever(
                    self.db.pool, timedelta(days=self.settings.retention_days), every_s=3600
                ),
                name="retention",
            ),
        ]
        http_task = asyncio.create_task(server.serve(), name="http")
        try:
            for hook in self.on_start:
                await hook()
            # Workers (schedulers, mail) need no consumer: start them before the consumer
            # groups join (together, but that still takes a second or more).
            tasks += [asyncio.create_task(w(), name=w.__name__) for w in self.workers]
            await self.broker.start()
            log.info(
                "service started",
                http=f"{self.settings.http_host}:{self.settings.http_port}",
                kafka=self.settings.kafka_bootstrap_servers,
            )
            stop_wait = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait(
                [stop_wait, http_task, *tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stop_wait and task.exception() is not None:
                    log.error("task failed", task=task.get_name(), error=repr(task.exception()))
            stop_wait.cancel()
        finally:
            log.info("service stopping")
            with contextlib.suppress(Exception):
                await self.broker.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(relay.publish_pending(), 5)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(http_task, 5)
            await self.producer.stop()
            await self.db.close()


def main(name: str, build: Callable[[Runtime], None]) -> None:
    """Entry point of `python -m services.<name>`: settings from the environment only."""
    settings = Settings()
    configure_logging(name, settings.log_level)
    rt = Runtime(name, settings)
    build(rt)
    asyncio.run(rt.serve())
