"""What a use case receives from the edge, whatever the transport: a batch of `Received`
messages, each with the record it came from and the trace it carries to its outputs;
and `Rejected`, which a use case raises to refuse one message with a reason (it is
dead-lettered, X1). Plain values: handlers and domain code import this, never the
messaging adapters (`shared.messaging`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

M = TypeVar("M")

CORRELATION_ID = "correlation_id"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"


class Rejected(Exception):
    """A message that is well-formed but breaks a rule; it goes to the dead-letter topic
    with this error (for example C11: re-subscribe without evidence)."""


@dataclass(frozen=True, slots=True)
class Trace:
    """What a record carries to the outputs it causes."""

    correlation_id: str
    traceparent: str | None = None
    tracestate: str | None = None
    # True when the record carried neither a correlation id nor a trace: made up here.
    generated: bool = False

    def headers(self) -> dict[str, str]:
        """The headers to put on every output this record causes."""
        out = {CORRELATION_ID: self.correlation_id}
        if self.traceparent:
            out[TRACEPARENT] = self.traceparent
            if self.tracestate:
                out[TRACESTATE] = self.tracestate
        return out


@dataclass(frozen=True, slots=True)
class Received(Generic[M]):
    """A parsed message with where it came from."""

    message: M
    record: ConsumerRecord
    trace: Trace

    @property
    def key(self) -> str | None:
        key = self.record.key
        return key.decode(errors="replace") if isinstance(key, bytes) else key

    @property
    def correlation_id(self) -> str:
        return self.trace.correlation_id
