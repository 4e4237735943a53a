"""X4 for HTTP requests, without a server: the trace read from a request's headers, and
a unit of work opened while serving it carrying that trace to what it publishes."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from shared.contracts import topics
from shared.db.uow import UnitOfWork
from shared.messaging.headers import REQUEST_TRACE, read_http_trace, read_trace
from shared.received import Received

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


def _record(key: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
    return ConsumerRecord("t", 0, 0, 0, 0, key, b"{}", None, len(key), 2, headers or [])


def _received(key: bytes, correlation: str | None = None) -> Any:
    record = _record(key, [("correlation_id", correlation.encode())] if correlation else None)
    return Received({}, record, read_trace(record) if correlation else None)


def _carried(inputs: list[Any], *keys: str) -> list[dict[str, str]]:
    uow = UnitOfWork(None, "consent")  # type: ignore[arg-type]
    uow.carry(inputs)
    for key in keys:
        uow.publish(topics.CONSENT_CHANGES, key, b"{}")
    return [h for *_, h in uow._outbox]


def test_x4_a_record_without_headers_gets_one_correlation_id_when_first_asked() -> None:
    """Carry, don't parse: no id is made for a record that causes nothing; once made, it
    is the same for every output the record causes."""
    item = _received(b"p-1")
    assert item._trace is None and not item.carries_trace
    first = item.correlation_id
    assert item.trace.generated and item.correlation_id == first and len(first) == 32


def test_x4_outputs_carry_the_trace_of_the_input_with_their_key() -> None:
    plain, sent = _received(b"p-1"), _received(b"p-2", "from-producer")
    headers = _carried([plain, sent], "p-1", "p-2", "p-3")
    assert headers[0] == {"correlation_id": plain.correlation_id}
    assert headers[1] == {"correlation_id": "from-producer"}
    assert headers[2] == {}  # no input of that key, and no trace all inputs share


def test_x4_per_key_a_producers_trace_wins_and_a_shared_trace_goes_everywhere() -> None:
    made, sent = _received(b"p-1"), _received(b"p-1", "from-producer")
    assert _carried([sent, made], "p-1") == [{"correlation_id": "from-producer"}]
    assert _carried([made, sent], "p-1") == [{"correlation_id": "from-producer"}]
    both = [_received(b"p-1", "one"), _received(b"p-2", "one")]
    assert _carried(both, "other") == [{"correlation_id": "one"}]
    alone = _received(b"p-1")
    assert _carried([alone], "other") == [{"correlation_id": alone.correlation_id}]
    # Two records of one key that carried nothing: that key's outputs carry one of them.
    twins = [_received(b"p-1"), _received(b"p-1")]
    assert _carried(twins, "p-1", "other") == [
        {"correlation_id": twins[1].correlation_id},
        {"correlation_id": twins[1].correlation_id},
    ]
