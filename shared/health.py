"""Readiness of a service's moving parts (X8), in one registry: its Kafka consumers (which
the edge reports into) and its background loops (outbox relay, mail worker, delay
scheduler, LISTEN loops, which call `report_progress` / `report_trouble`).

Each part registers a named `Component` and reports into it as it works: `ok()` after a
pass or batch that made progress or found nothing to do, `failed(reason)` when a pass
raised. `/readyz` answers 503 with every component's reason while one of them

- is erroring (its last pass raised),
- is stalled (no report for longer than its `stall_s`: the loop hangs, or a consumer has
  records waiting and applied none for that long), or
- is a consumer without partitions past its grace period (or still joining its group).

A process-wide registry (`HEALTH`) is enough: one process runs one service. `/metrics`
shows the same state as gauges, so an alert can fire on what the probe sees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import Gauge

from shared.logging import get_logger

log = get_logger(__name__)

COMPONENT_UP = Gauge(
    "consentflow_component_ready",
    "1 while a consumer or background loop is making progress, else 0 (X8)",
    ["component", "kind"],
)
COMPONENT_LAST_SUCCESS = Gauge(
    "consentflow_component_last_success_timestamp_seconds",
    "Unix time of a component's last successful pass or batch",
    ["component", "kind"],
)


@dataclass
class Component:
    """One consumer or loop; see the module docstring for what makes it unready."""

    name: str
    kind: str  # "consumer" or "loop"
    stall_s: float
    grace_s: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    last_report: float = field(default_factory=time.monotonic)
    last_success: float | None = None
    error: str | None = None
    # Consumers only: None while joining the group, then the partitions held and since when.
    partitions: int | None = None
    partitions_since: float = field(default_factory=time.monotonic)
    lag: int = 0
    last_applied: float = field(default_factory=time.monotonic)

    def ok(self) -> None:
        """A pass (or a poll) went through."""
        now = time.monotonic()
        self.last_report = now
        self.last_success = now
        self.error = None
        COMPONENT_LAST_SUCCESS.labels(self.name, self.kind).set(time.time())

    def failed(self, reason: str) -> None:
        """A pass raised; the component is unready until the next `ok()`."""
        self.last_report = time.monotonic()
        self.error = reason[:500]

    def applied(self) -> None:
        """A consumer applied a batch (its lag went down)."""
        self.last_applied = time.monotonic()
        self.ok()

    def assigned(self, count: int) -> None:
        """A consumer's group (re)balanced: it now holds `count` partitions."""
        if count != self.partitions:
            self.partitions_since = time.monotonic()
        self.partitions = count
        self.last_report = time.monotonic()

    def problem(self, now: float | None = None) -> str | None:
        """Why this component is not ready, or None when it is."""
        now = time.monotonic() if now is None else now
        if self.error is not None:
            return f"erroring: {self.error}"
        if now - self.last_report > self.stall_s:
            return f"stalled: no progress for {now - self.last_report:.0f}s"
        if self.kind != "consumer":
            return None
        if self.partitions is None:
            return "joining its consumer group"
        if self.partitions == 0 and now - self.partitions_since > self.grace_s:
            return f"no partitions assigned for {now - self.partitions_since:.0f}s"
        if self.lag > 0 and now - self.last_applied > self.stall_s:
            return (
                f"stalled: {self.lag} records waiting, none applied"
                f" for {now - self.last_applied:.0f}s"
            )
        return None


class Health:
    """The registry every consumer and loop of the process reports into."""

    def __init__(self) -> None:
        self.components: dict[str, Component] = {}
        # How long a background loop may report no pass (`KAFKA_STALL_S`, set by the
        # runtime): each pass reports, idle ones included, so longer means it hangs.
        self.loop_stall_s = float("inf")

    def register(
        self, name: str, kind: str = "loop", stall_s: float = 60.0, grace_s: float = 0.0
    ) -> Component:
        """The component called `name`, created on first use (a restarted loop reuses it)."""
        found = self.components.get(name)
        if found is None:
            found = self.components[name] = Component(name, kind, stall_s, grace_s)
        return found

    def status(self) -> dict[str, str | None]:
        """Component name -> why it is not ready (None when it is), every component."""
        now = time.monotonic()
        out: dict[str, str | None] = {}
        for c in self.components.values():
            reason = out[c.name] = c.problem(now)
            COMPONENT_UP.labels(c.name, c.kind).set(0 if reason else 1)
        return out

    def problems(self) -> dict[str, str]:
        """Component name -> reason, for every component that is not ready."""
        return {name: why for name, why in self.status().items() if why is not None}

    def reset(self) -> None:
        self.components.clear()


HEALTH = Health()


# --- background loops ----------------------------------------------------------------
# A loop never dies from one item: it fails or dead-letters that item and goes on. What
# it cannot get past (the database or broker gone, the same error on every pass) it
# reports with the reason; every pass that goes through reports as progress, idle passes
# included, so a loop that hangs without raising shows as stalled.


def report_trouble(loop: str, reason: str) -> None:
    """`loop` could not make progress this pass, because of `reason` (logged once per
    reason; `/readyz` names it until the next pass goes through)."""
    component = HEALTH.register(loop, kind="loop", stall_s=HEALTH.loop_stall_s)
    if component.error != reason[:500]:
        log.error("background loop cannot make progress", loop=loop, reason=reason)
    component.failed(reason)


def report_progress(loop: str) -> None:
    """`loop` completed a pass; clears an earlier report (logged only then)."""
    component = HEALTH.register(loop, kind="loop", stall_s=HEALTH.loop_stall_s)
    if component.error is not None:
        log.info("background loop moving again", loop=loop)
    component.ok()
