"""Which flows an event enters a profile into (F2). Pure.

A historical import never enters a flow; the profile filter is checked at entry.
Entering the same flow twice for one event id is prevented by the adapter (one run
per flow and event id)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.flow_executor.domain.conditions import (
    Compiled,
    compile_condition,
    evaluate,
    reads_person,
)
from services.flow_executor.domain.walker import passes_profile_filter
from shared.contracts import ConsentChanged, FlowDefinition, ProfileEvent

LIST_SUBSCRIBED = "Subscribed to List"


def merged_person(known: Mapping[str, Any] | None, own: Mapping[str, Any]) -> dict[str, Any]:
    """F3: the profile as the executor knows it with one event's own fields merged in:
    given fields replace known ones, custom properties merge key by key."""
    out = dict(known or {})
    out.update({k: v for k, v in own.items() if k != "properties" and v not in (None, "", {})})
    out["properties"] = {**((known or {}).get("properties") or {}), **(own.get("properties") or {})}
    return out


def event_context(event: ProfileEvent, person: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What conditions and templates see for a metric event. `person` is the merged
    profile the executor keeps (F3), when it has one; else the event's own profile."""
    return {
        "event": dict(event.properties),
        "person": dict(person) if person else event.profile.model_dump(mode="json"),
    }


def list_context(change: ConsentChanged, person: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What conditions and templates see for a `Subscribed to List` entry."""
    return {
        "event": {"list_id": change.list_id},
        "person": dict(person) if person else change.profile.model_dump(mode="json"),
    }


def may_enter(flows: Iterable[FlowDefinition], event: ProfileEvent) -> bool:
    """Whether this event may enter any of `flows`, decided on the event alone: a flow
    triggered by its metric whose trigger filter either passes on the event's own
    properties or reads the profile (then `metric_flows` decides, with the stored
    profile). Most events are of metrics no flow listens to, or fail a filter on the
    event alone (a score above a threshold): they need no profile read and no run (F2)."""
    if event.historical_import:
        return False
    context: dict[str, Any] | None = None
    for flow in flows:
        trigger = flow.trigger
        if trigger.type != "metric" or trigger.metric != event.metric:
            continue
        if trigger.filter is None or reads_person(trigger.filter):
            return True
        if context is None:
            context = {"event": event.properties}
        if evaluate(trigger.filter, context):
            return True
    return False


class EntryIndex:
    """`may_enter` for a batch of events against the flows in force, worked out once per
    batch: per account and metric, the trigger filters of the flows listening to it,
    compiled (`conditions.compile_condition`). An event of a metric no flow of its
    account listens to is refused by one lookup, before any filter (F2).

    Made per batch from the flows the batch read: the definitions topic is shared out
    among replicas like any other, so no replica's own consumer sees every flow."""

    def __init__(self, flows: Mapping[str, Iterable[FlowDefinition]]) -> None:
        # (account, metric) -> each listening flow's test in flow order; None: the flow
        # may take every such event (no filter, or one that reads the profile).
        self._tests: dict[tuple[str, str], list[Compiled | None]] = {}
        for account, found in flows.items():
            for flow in found:
                trigger = flow.trigger
                if trigger.type != "metric":
                    continue
                test = None
                if trigger.filter is not None and not reads_person(trigger.filter):
                    test = compile_condition(trigger.filter)
                self._tests.setdefault((account, trigger.metric), []).append(test)

    def may_enter(
        self, account_id: str, metric: str, properties: Mapping[str, Any], historical: bool
    ) -> bool:
        """`may_enter(flows[account_id], event)` on the event's fields."""
        tests = self._tests.get((account_id, metric))
        if tests is None or historical:
            return False
        context = {"event": properties}
        return any(test is None or test(context) for test in tests)


def metric_flows(
    flows: Iterable[FlowDefinition],
    event: ProfileEvent,
    person: Mapping[str, Any] | None = None,
) -> list[FlowDefinition]:
    """Metric-triggered flows this event enters; none for a historical import. The
    profile filter sees the merged profile (F3)."""
    if event.historical_import:
        return []
    context = event_context(event, person)
    matched = []
    for flow in flows:
        trigger = flow.trigger
        if trigger.type != "metric" or trigger.metric != event.metric:
            continue
        if trigger.filter is not None and not evaluate(trigger.filter, context):
            continue
        if passes_profile_filter(flow, context):
            matched.append(flow)
    return matched


def list_flows(
    flows: Iterable[FlowDefinition],
    change: ConsentChanged,
    person: Mapping[str, Any] | None = None,
) -> list[FlowDefinition]:
    """List-triggered flows a `Subscribed to List` event enters (never a historical import)."""
    if change.type != LIST_SUBSCRIBED or change.historical_import or not change.list_id:
        return []
    context = list_context(change, person)
    return [
        f
        for f in flows
        if f.trigger.type == "list"
        and f.trigger.list_id == change.list_id
        and passes_profile_filter(f, context)
    ]
