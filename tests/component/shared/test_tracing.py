"""Spans from the Kafka edge (X4, correlation across services): with tracing on, each
consumed batch is a span linked to the W3C `traceparent` its records carried, through
FastStream's telemetry middleware, against the real broker; with tracing off, the broker
has no middleware at all."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import BaseModel

from shared.db import Database
from shared.health import Health
from shared.messaging.batches import BatchApplier, json_parser
from shared.messaging.edge import KafkaEdge, make_broker
from shared.tracing import telemetry_middleware, tracer_provider
from tests.component.shared.conftest import settings_for
from tests.conftest import eventually


class Ping(BaseModel):
    id: str
    n: int


async def _insert(items, uow) -> None:
    await uow.conn.executemany(
        "INSERT INTO applied (id, n) VALUES ($1, $2)", [(i.message.id, i.message.n) for i in items]
    )


def traceparent(trace_id: str) -> bytes:
    return f"00-{trace_id}-{'ab' * 8}-01".encode()


async def test_x4_a_consumed_batch_is_a_span_linked_to_its_records_traces(
    stack, db: Database
) -> None:
    topic = f"traced-{uuid.uuid4().hex[:6]}"
    exporter = InMemorySpanExporter()
    provider = tracer_provider("test", exporter)
    settings = settings_for(stack)
    edge = KafkaEdge(
        settings, "test", db, Health(), middlewares=(telemetry_middleware("test", provider),)
    )
    batch = BatchApplier("traced", db, json_parser(Ping), _insert, topic=topic)
    edge.attach(topic, batch, Ping, group=f"test.{topic}")
    traces = [uuid.uuid4().hex for _ in range(2)]
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
    await producer.start()
    try:
        for i, trace_id in enumerate(traces):
            await producer.send_and_wait(
                topic,
                f'{{"id": "t{i}", "n": {i}}}'.encode(),
                key=b"k",
                partition=0,
                headers=[
                    ("correlation_id", f"c{i}".encode()),
                    ("traceparent", traceparent(trace_id)),
                    # A header that is not UTF-8 costs the trace nothing and loses nothing.
                    ("x-binary", b"\xff\xfe"),
                ],
            )
        await edge.start()
        try:

            async def linked():
                spans = exporter.get_finished_spans()
                found = {
                    format(link.context.trace_id, "032x")
                    for span in spans
                    if span.kind is SpanKind.CONSUMER
                    for link in span.links
                }
                processed = [s for s in spans if s.name.endswith("process")]
                return found if set(traces) <= found and processed else None

            assert set(traces) <= await eventually(linked, timeout_s=20)
            async with db.pool.acquire() as conn:
                applied = await conn.fetch("SELECT id FROM applied ORDER BY id")
            assert [r["id"] for r in applied] == ["t0", "t1"]
        finally:
            await edge.stop()
    finally:
        await producer.stop()
        provider.shutdown()


def test_x4_without_a_collector_the_broker_has_no_telemetry(monkeypatch, stack) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert not make_broker(settings_for(stack), "quiet").middlewares
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert make_broker(settings_for(stack), "traced").middlewares
