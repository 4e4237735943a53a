"""Our own reading of a Kafka record's headers, at the edge, record by record.

Producers outside the project put whatever they like into headers. A framework parser
that decodes every header as UTF-8 fails a whole batch on one odd record; here each
record is read on its own, and a record whose headers we cannot trust costs only that
record: it is dead-lettered with the reason and its neighbours are applied (X1, X2).

What we read: `correlation_id` and the W3C trace context (`traceparent`, `tracestate`),
to carry them to every output the record causes. Such a header is refused when its value
is not UTF-8, is longer than `MAX_HEADER_VALUE`, or appears twice (which one would we
believe?). A record with more than `MAX_HEADERS` headers or more than
`MAX_HEADER_BYTES` of them in total is refused whatever they are. Other headers are not
ours to judge and are ignored. A `traceparent` that is UTF-8 but not of the W3C form is
dropped (the W3C rule: restart the trace, don't fail the request).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar

from aiokafka import ConsumerRecord

from shared.metrics import BAD_HEADERS
from shared.received import (
    CORRELATION_ID,
    TRACEPARENT,
    TRACESTATE,
    Trace,
    new_correlation_id,
)

CARRIED = (CORRELATION_ID, TRACEPARENT, TRACESTATE)

MAX_HEADER_VALUE = 512
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024


class BadHeaders(ValueError):
    """A record whose headers we cannot trust; it is dead-lettered with this reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"bad headers ({kind}): {detail}")
        self.kind = kind


def _hex(text: str, length: int) -> bool:
    if len(text) != length or text != text.lower():
        return False
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def valid_traceparent(value: str) -> bool:
    """W3C Trace Context `version-traceid-parentid-flags`, ids not all zero."""
    parts = value.split("-")
    if len(parts) < 4 or not _hex(parts[0], 2) or parts[0] == "ff":
        return False
    if parts[0] == "00" and len(parts) != 4:
        return False
    _, trace_id, parent_id, flags = parts[:4]
    return (
        _hex(trace_id, 32)
        and _hex(parent_id, 16)
        and _hex(flags, 2)
        and trace_id != "0" * 32
        and parent_id != "0" * 16
    )


def read_trace(record: ConsumerRecord, consumer: str = "") -> Trace:
    """The record's correlation id and trace context; raises `BadHeaders` (see the module
    docstring). A record without a correlation id gets a new one here, so that what it
    causes can still be followed."""
    try:
        return _read(record, consumer)
    except BadHeaders as exc:
        BAD_HEADERS.labels(consumer, record.topic, exc.kind).inc()
        raise


def _read(record: ConsumerRecord, consumer: str) -> Trace:
    headers = record.headers or ()
    if len(headers) > MAX_HEADERS:
        raise BadHeaders("too_many", f"{len(headers)} headers (at most {MAX_HEADERS})")
    total = sum(len(name) + len(value or b"") for name, value in headers)
    if total > MAX_HEADER_BYTES:
        raise BadHeaders("too_large", f"{total} bytes of headers (at most {MAX_HEADER_BYTES})")
    found: dict[str, str] = {}
    for name, value in headers:
        if name not in CARRIED:
            continue
        if name in found:
            raise BadHeaders("duplicated", f"{name} appears more than once")
        raw = value or b""
        if len(raw) > MAX_HEADER_VALUE:
            raise BadHeaders("too_large", f"{name} is {len(raw)} bytes (at most 512)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadHeaders("not_utf8", f"{name} is not UTF-8") from None
        if not text.isprintable():
            raise BadHeaders("not_printable", f"{name} holds control characters")
        found[name] = text.strip()
    traceparent = found.get(TRACEPARENT)
    if traceparent is not None and not valid_traceparent(traceparent):
        BAD_HEADERS.labels(consumer, record.topic, "traceparent_ignored").inc()
        traceparent = None
    correlation = found.get(CORRELATION_ID) or (traceparent.split("-")[1] if traceparent else None)
    return Trace(
        correlation or new_correlation_id(),
        traceparent,
        found.get(TRACESTATE) if traceparent else None,
        generated=correlation is None,
    )


# --- HTTP requests -------------------------------------------------------------------------

HTTP_CORRELATION_ID = "x-correlation-id"

REQUEST_TRACE: ContextVar[Trace | None] = ContextVar("request_trace", default=None)
"""The trace of the HTTP request being served (set by `shared.http.TraceHeaders`): a unit
of work opened while serving it carries it to what it publishes, as a Kafka batch carries
its records' traces."""


def read_http_trace(headers: Iterable[tuple[bytes, bytes]]) -> Trace:
    """The correlation id (`X-Correlation-Id`) and W3C trace context of an HTTP request,
    from its ASGI headers (lower-case names). Unlike a record's, a header we cannot use
    is ignored, never refused: the request is served and the trace restarts here."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers:
        key = name.decode("latin-1").lower()
        if key not in (HTTP_CORRELATION_ID, TRACEPARENT, TRACESTATE):
            continue
        if key in seen:  # repeated: which one would we believe?
            found.pop(key, None)
            continue
        seen.add(key)
        try:
            text = value.decode("utf-8").strip()
        except UnicodeDecodeError:
            continue
        if text and len(value) <= MAX_HEADER_VALUE and text.isprintable():
            found[key] = text
    traceparent = found.get(TRACEPARENT)
    if traceparent is not None and not valid_traceparent(traceparent):
        traceparent = None
    correlation = found.get(HTTP_CORRELATION_ID) or (
        traceparent.split("-")[1] if traceparent else None
    )
    return Trace(
        correlation or new_correlation_id(),
        traceparent,
        found.get(TRACESTATE) if traceparent else None,
        generated=correlation is None,
    )
