"""Which runs a batch of events starts (F2), with the profile the entry filter sees (F3).
Pure.

The entry filter and the run's context see the profile the executor keeps (as stored
before this batch) with the event's own fields merged in, not only what the event
carried. A second copy of an event in one batch starts the same run (same id); the
handler keeps the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.flow_executor.domain.runs import (
    UNKNOWN_PROFILE,
    ProfileKey,
    ProfileState,
    Run,
    new_run,
)
from services.flow_executor.domain.triggers import (
    event_context,
    list_context,
    list_flows,
    merged_person,
    metric_flows,
)
from shared.contracts import ConsentChanged, FlowDefinition, ProfileEvent

FlowsByAccount = Mapping[str, Sequence[FlowDefinition]]


def event_entries(
    events: Sequence[ProfileEvent], flows: FlowsByAccount, known: Mapping[ProfileKey, ProfileState]
) -> list[Run]:
    """The metric-flow runs `events` start, in event order."""
    entries: list[Run] = []
    for e in events:
        if e.account_id not in flows:
            continue
        stored = known.get((e.account_id, e.profile.id), UNKNOWN_PROFILE).profile
        person = merged_person(stored, e.profile.model_dump(mode="json"))
        entries += [
            new_run(flow, e.event_id, e.profile.id, event_context(e, person), "metric")
            for flow in metric_flows(flows[e.account_id], e, person)
        ]
    return entries


def list_entries(
    changes: Sequence[ConsentChanged],
    flows: FlowsByAccount,
    known: Mapping[ProfileKey, ProfileState],
) -> list[Run]:
    """The list-flow runs `Subscribed to List` changes start, in change order."""
    entries: list[Run] = []
    for c in changes:
        if c.account_id not in flows:
            continue
        stored = known.get((c.account_id, c.profile_id), UNKNOWN_PROFILE).profile
        person = merged_person(stored, c.profile.model_dump(mode="json"))
        entries += [
            new_run(flow, c.change_id, c.profile_id, list_context(c, person), "list")
            for flow in list_flows(flows[c.account_id], c, person)
        ]
    return entries


def first_of_each(entries: Sequence[Run]) -> list[Run]:
    """One run per id, the first copy (F2: an event enters a flow once)."""
    runs: dict[object, Run] = {}
    for r in entries:
        runs.setdefault(r.run_id, r)
    return list(runs.values())
