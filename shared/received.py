"""What a use case receives from the edge, whatever the transport: a batch of `Received`
messages, each with the record it came from and the trace it carries to its outputs;
and `Rejected`, which a use case raises to refuse one message with a reason (it is
dead-lettered, X1). Plain values: handlers and domain code import this, never the
messaging adapters (`shared.messaging`)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

M = TypeVar("M")

CORRELATION_ID = "correlation_id"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()


def new_correlation_id() -> str:
    """A new correlation id (32 hex digits, like a W3C trace id): a random prefix drawn
    once per process and a counter. As unique as a random id, without drawing from the
    system's random source for every record that comes without one."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


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


class Received(Generic[M]):
    """A parsed message with where it came from, and the trace it carries.

    The trace is read at the edge only from a record that carried headers (they are
    checked there, X1); a record without any gets its correlation id the first time
    something asks for it: most records cause no output, and making an id for each
    was a measurable share of a batch's cost."""

    __slots__ = ("_trace", "message", "record")

    def __init__(self, message: M, record: ConsumerRecord, trace: Trace | None = None) -> None:
        self.message = message
        self.record = record
        self._trace = trace

    @property
    def trace(self) -> Trace:
        if self._trace is None:
            self._trace = Trace(new_correlation_id(), generated=True)
        return self._trace

    @property
    def carries_trace(self) -> bool:
        """Whether the producer sent a correlation id or trace context with it."""
        return self._trace is not None and not self._trace.generated

    @property
    def key(self) -> str | None:
        key = self.record.key
        return key.decode(errors="replace") if isinstance(key, bytes) else key

    @property
    def correlation_id(self) -> str:
        return self.trace.correlation_id

    def __repr__(self) -> str:
        return f"Received({self.message!r}, trace={self._trace!r})"


def shared_trace(inputs: Sequence[Received[Any]]) -> Trace | None:
    """The one trace all `inputs` carry, if they share one. Traces made up here are each
    new, so two inputs that carried none never share one (and none is made to find so)."""
    if len(inputs) == 1:
        return inputs[0].trace
    if not inputs or not all(i.carries_trace for i in inputs):
        return None
    first = inputs[0].trace
    return first if all(i.trace == first for i in inputs) else None
