"""X4 for HTTP requests, without a server: the trace read from a request's headers, and
a unit of work opened while serving it carrying that trace to what it publishes."""

from __future__ import annotations

from typing import Any

from shared.contracts import topics
from shared.db.uow import UnitOfWork
from shared.messaging.headers import REQUEST_TRACE, read_http_trace

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_x4_a_requests_correlation_id_and_trace_context_are_read() -> None:
    trace = read_http_trace(
        [(b"x-correlation-id", b"req-1"), (b"traceparent", TP.encode()), (b"tracestate", b"k=v")]
    )
    assert trace.headers() == {"correlation_id": "req-1", "traceparent": TP, "tracestate": "k=v"}
    assert not trace.generated


def test_x4_a_request_with_only_a_traceparent_is_followed_by_its_trace_id() -> None:
    trace = read_http_trace([(b"traceparent", TP.encode())])
    assert trace.correlation_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_x4_headers_we_cannot_use_are_ignored_and_the_trace_restarts() -> None:
    trace = read_http_trace(
        [
            (b"x-correlation-id", b"\xff\xfe"),
            (b"traceparent", b"not-a-traceparent"),
            (b"tracestate", b"k=v"),
            (b"x-correlation-id", b"second"),  # a repeat is not believed either
        ]
    )
    assert trace.generated and len(trace.correlation_id) == 32
    assert trace.headers() == {"correlation_id": trace.correlation_id}
    too_long = read_http_trace([(b"x-correlation-id", b"x" * 513)])
    assert too_long.generated


def test_x4_a_unit_of_work_opened_while_serving_a_request_carries_its_trace() -> None:
    message: Any = b"{}"
    served = UnitOfWork(None, "consent")  # type: ignore[arg-type]
    token = REQUEST_TRACE.set(read_http_trace([(b"x-correlation-id", b"req-9")]))
    try:
        during = UnitOfWork(None, "consent")  # type: ignore[arg-type]
    finally:
        REQUEST_TRACE.reset(token)
    during.publish(topics.CONSENT_CHANGES, "p-1", message)
    during.publish(topics.CONSENT_CHANGES, "p-2", message, {"correlation_id": "own"})
    served.publish(topics.CONSENT_CHANGES, "p-1", message)
    assert [h for *_, h in during._outbox] == [
        {"correlation_id": "req-9"},
        {"correlation_id": "own"},
    ]
    assert [h for *_, h in served._outbox] == [{}]
