"""Which flows an event enters a profile into (F2). Pure.

A historical import never enters a flow; the profile filter is checked at entry.
Entering the same flow twice for one event id is prevented by the adapter (one run
per flow and event id)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.flow_executor.domain.conditions import evaluate, reads_person
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
    return may_enter_with(flows, event.metric, event.properties, event.historical_import)


def may_enter_with(
    flows: Iterable[FlowDefinition],
    metric: str,
    properties: Mapping[str, Any],
    historical_import: bool,
) -> bool:
    """`may_enter` on an event's fields (a slim record's, `domain.event_records`)."""
    if historical_import:
        return False
    context: dict[str, Any] | None = None
    for flow in flows:
        trigger = flow.trigger
        if trigger.type != "metric" or trigger.metric != metric:
            continue
        if trigger.filter is None or reads_person(trigger.filter):
            return True
        if context is None:
            context = {"event": properties}
        if evaluate(trigger.filter, context):
            return True
    return False


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
