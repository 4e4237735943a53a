"""Running one service: the composition root every `python -m services.<name>` uses.

A service's `app.build(rt)` declares its Kafka subscribers and publishers on `rt.kafka`
(a FastStream broker, `shared.messaging.edge`), its HTTP routes and its background
workers; `serve()` then opens the database pool, the outbox producer, the HTTP server and
the broker, and on SIGTERM/SIGINT stops consuming first, lets the outbox drain, and
closes everything.

`/readyz` answers 200 only when the database and the broker answer and every consumer
and background loop reports progress (`shared.health`, X8): a freshly started service
is not ready until its consumers hold their partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from shared import heap
from shared.cancellation import stop_tasks
from shared.db import Database
from shared.db.outbox import OutboxRelay
from shared.db.retention import prune_forever
from shared.health import HEALTH, Health
from shared.http import BAD_INPUT_HANDLERS, ApiAuth, InputGuard, TraceHeaders, health_routes
from shared.logging import configure_logging, get_logger
from shared.messaging.clients import make_producer
from shared.messaging.edge import KafkaEdge
from shared.openapi import openapi, reference_routes
from shared.privacy import secret_problem
from shared.settings import Settings, StartupRefused

log = get_logger(__name__)


class _Server(uvicorn.Server):
    # The runtime owns signal handling; uvicorn must not replace it.
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class Runtime:
    """What a service is made of; see the module docstring."""

    def __init__(
        self, name: str, settings: Settings, health: Health = HEALTH, *, settle_heap: bool = False
    ) -> None:
        self.name = name
        self.settings = settings
        self.db = Database(settings.database_url, name, settings.database_pool_size)
        self.health = health
        self.kafka = KafkaEdge(settings, name, self.db, health)
        # Only a service's own process (`main`) settles its heap (shared.heap): freezing a
        # test runner's heap from a runtime served inside it would keep its garbage.
        self.settle_heap = settle_heap
        health.loop_stall_s = settings.kafka_stall_s
        self.auth = ApiAuth(settings)
        self.routes: list[BaseRoute] = []
        self.workers: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.on_start: list[Callable[[], Awaitable[None]]] = []
        self._stop = asyncio.Event()
        self._api_document: dict[str, Any] | None = None

    async def _broker_answers(self) -> bool:
        # One metadata request on the producer's connections (no new TLS/SASL handshake).
        producer = getattr(self, "producer", None)
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 3)
        except Exception:
            return False
        return True

    async def ready(self) -> dict[str, bool | str]:
        """The readiness checks: database, broker, then every consumer and loop (X8);
        a failing one carries its reason instead of `true`."""
        checks: dict[str, bool | str] = {
            "database": await self.db.ping(),
            "broker": await self._broker_answers(),
        }
        for name, reason in self.health.status().items():
            checks[name] = reason or True
        return checks

    def app_routes(self) -> list[BaseRoute]:
        """Every route the HTTP server serves: health and metrics, the API reference
        (`/openapi.json`, `/docs`), then the service's."""
        return [*health_routes(self.ready), *reference_routes(self.api_document), *self.routes]

    def api_document(self) -> dict[str, Any]:
        """The service's OpenAPI 3.1 document (`shared.openapi`), built on first use from
        the routes it serves: the one `deploy/contracts/openapi/` publishes."""
        if self._api_document is None:
            self._api_document = openapi(self.name, self.app_routes())
        return self._api_document

    def stop(self) -> None:
        self._stop.set()

    async def serve(self) -> str | None:
        """Run until stopped; see the module docstring for the order of things.

        Returns None after a requested stop, else why the service had to stop (a worker,
        the HTTP server or the relay ended on its own)."""
        failure: str | None = None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        self.api_document()  # built once, before anything answers
        await self.db.start()
        # aiokafka clients must be created inside the running loop.
        self.producer = make_producer(self.settings, f"consentflow-{self.name}-outbox")
        await self.producer.start()
        app = Starlette(
            routes=self.app_routes(),
            middleware=[Middleware(TraceHeaders), Middleware(InputGuard)],
            exception_handlers=BAD_INPUT_HANDLERS,
        )
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
        relay = OutboxRelay(
            self.db.pool,
            self.producer,
            self.db.schema,
            topic_prefix=self.settings.kafka_topic_prefix,
        )
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
            await self.kafka.start()
            log.info(
                "service started",
                http=f"{self.settings.http_host}:{self.settings.http_port}",
                kafka=self.settings.kafka_bootstrap_servers,
                frozen_objects=heap.settle() if self.settle_heap else 0,
            )
            stop_wait = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait(
                [stop_wait, http_task, *tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is stop_wait:
                    continue
                error = task.exception()
                failure = f"{task.get_name()} {'failed: ' + repr(error) if error else 'ended'}"
                log.error("service must stop", task=task.get_name(), error=repr(error))
            stop_wait.cancel()
        finally:
            log.info("service stopping")
            with contextlib.suppress(Exception):
                await self.kafka.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(relay.publish_pending(), 5)
            await stop_tasks(tasks)
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(http_task, 5)
            await self.producer.stop()
            await self.db.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return failure


def main(name: str, build: Callable[[Runtime], None]) -> None:
    """Entry point of `python -m services.<name>`: settings from the environment only.

    Exits non-zero, saying why on stderr and in the log, when a setting is unsafe (X6) or
    a part of the service stopped on its own: a supervisor must see the failure and
    restart, never take a silent exit 0 for a clean stop.
    """
    try:
        settings = Settings()
        configure_logging(name, settings.log_level)
        settings.check_startup()
        if (problem := secret_problem(settings)) is not None:
            # Without the key, erased addresses could not be recognised.
            raise StartupRefused(problem)
    except (StartupRefused, ValidationError) as exc:
        print(f"consentflow-{name}: refusing to start: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            log.error("refusing to start", reason=str(exc))
        raise SystemExit(2) from None
    rt = Runtime(name, settings, settle_heap=True)
    build(rt)
    failure = asyncio.run(rt.serve())
    if failure:
        print(f"consentflow-{name}: stopped: {failure}", file=sys.stderr)
        raise SystemExit(1)
