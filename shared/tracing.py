"""OpenTelemetry for the Kafka edge: FastStream's telemetry middleware makes a span per
consumed batch, linked to each record's W3C `traceparent` (the header every output of the
outbox already carries), and exports the spans over OTLP/HTTP to
`OTEL_EXPORTER_OTLP_ENDPOINT` (with the standard `OTEL_*` variables for headers and
protocol details).

Nothing here runs unless that variable is set (`shared.messaging.edge.make_broker`): a
deployment without a collector pays nothing.
"""

from __future__ import annotations

from typing import Any


def tracer_provider(service: str, exporter: Any | None = None) -> Any:
    """A tracer provider naming the service (`consentflow-<service>`), batching its
    spans to `exporter` (OTLP/HTTP from the environment by default)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"consentflow-{service}"}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def telemetry_middleware(service: str, provider: Any | None = None) -> Any:
    """FastStream's Kafka telemetry middleware on the service's tracer provider."""
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return KafkaTelemetryMiddleware(tracer_provider=provider or tracer_provider(service))
