"""Which flows an event enters a profile into (F2). Pure."""

from __future__ import annotations

from collections.abc import Iterable

from shared.contracts import ConsentChanged, FlowDefinition, ProfileEvent
from services.flow_executor.domain.conditions import evaluate
from services.flow_executor.domain.walker import passes_profile_filter


def event_context(event: ProfileEvent) -> dict[str, object]:
    return {"event": dict(event.properties), "person": event.profile.model_dump()}


def metric_flows(flows: Iterable[FlowDefinition], event: ProfileEvent) -> list[FlowDefinition]:
    """Metric-triggered flows this event enters; none for a historical import."""
    if event.historical_import:
        return []
    context = event_context(event)
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


def list_flows(flows: Iterable[FlowDefinition], change: ConsentChanged) -> list[FlowDefinition]:
    """List-triggered flows a `Subscribed to List` event enters (never a historical import)."""
    if change.type != "Subscribed to List" or change.historical_import or not change.list_id:
        return []
    context = {"event": {"list_id": change.list_id}, "person": change.profile.model_dump()}
    return [
        f
        for f in flows
        if f.trigger.type == "list"
        and f.trigger.list_id == change.list_id
        and passes_profile_filter(f, context)
    ]
