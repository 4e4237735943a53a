"""Where background loops (outbox relay, mail worker, schedulers, LISTEN) report that they
are stuck or moving again.

A loop never dies from one item: it fails or dead-letters that item and goes on. What it
cannot get past (the database or broker gone, the same error on every pass) it reports
here with the reason; every pass that goes through it reports as progress, idle passes
included. Readiness (`/readyz`, X8) subscribes with `add_listener`: a stuck loop turns
into a 503 naming the reason, and so does a loop that hangs without raising (no pass
reported for `KAFKA_STALL_S`, for example a query to a frozen database that never
returns). Without a listener a report is only logged.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.logging import get_logger

log = get_logger(__name__)

Listener = Callable[[str, str | None], None]
_listeners: list[Listener] = []
_stuck: dict[str, str] = {}


def add_listener(listener: Listener) -> None:
    """Call `listener(loop, reason)` on every report: a reason when `loop` is stuck,
    None for each pass that went through."""
    _listeners.append(listener)


def report_trouble(loop: str, reason: str) -> None:
    """`loop` could not make progress this pass, because of `reason`."""
    if _stuck.get(loop) != reason:
        log.error("background loop cannot make progress", loop=loop, reason=reason)
    _stuck[loop] = reason
    for listener in _listeners:
        listener(loop, reason)


def report_progress(loop: str) -> None:
    """`loop` completed a pass; clears an earlier report (logged only then)."""
    if _stuck.pop(loop, None) is not None:
        log.info("background loop moving again", loop=loop)
    for listener in _listeners:
        listener(loop, None)
