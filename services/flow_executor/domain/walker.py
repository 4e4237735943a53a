"""Walking a profile through a flow's steps (F3–F6). Pure: it returns decisions, and
`planning` turns them into effects (rows to write, requests and activity to publish).

The walk starts at a step and goes on until the flow ends, a delay must wait, or the
profile filter stops the profile. Delays of 0 s are passed through; longer ones return
`Scheduled`, and when the delay is due `resume` continues after it in the version of the
flow in force *then* (a waiting profile follows the edited flow; if the delay step was
removed from the flow, the profile exits). The profile filter is checked at entry (by
the caller) and again before every action. Whether an action already ran in this run
(F4) is enforced by the adapter's primary key on (run, step), so a redelivered or
re-fired walk cannot run it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.flow_executor.domain.conditions import evaluate
from shared.contracts.flows import (
    DelayStep,
    EmailStep,
    FlowDefinition,
    InternalAlertStep,
    SmsStep,
    SplitStep,
)

ActionStep = InternalAlertStep | EmailStep | SmsStep


@dataclass(frozen=True)
class Scheduled:
    step_id: str
    seconds: int


@dataclass(frozen=True)
class Execute:
    step: ActionStep


@dataclass(frozen=True)
class HoldForReview:
    step: ActionStep


@dataclass(frozen=True)
class Skip:
    step_id: str
    reason: str


@dataclass(frozen=True)
class Wait:
    """A message step that may not go yet (F8 quiet hours): the run waits on a timer,
    as on a delay, and tries the step again at `until`."""

    step_id: str
    until: datetime
    reason: str


@dataclass(frozen=True)
class Exit:
    reason: str


Decision = Scheduled | Execute | HoldForReview | Skip | Wait | Exit
Timing = Callable[[ActionStep], Wait | Skip | None]
"""Whether a live action may go now (None), must wait (F8), or is skipped (F9)."""

COMPLETED = "completed"
SKIPPED_DRAFT = "Skipped: draft"
SKIPPED_FILTER = "Skipped: profile filter"


def passes_profile_filter(flow: FlowDefinition, context: Mapping[str, Any]) -> bool:
    """Whether the profile in `context` meets the flow's profile filter (bare names are
    profile properties)."""
    return flow.profile_filter is None or evaluate(flow.profile_filter, context, "person")


def advance(
    flow: FlowDefinition,
    start: str | None,
    context: Mapping[str, Any],
    blocked: Callable[[ActionStep], str | None],
    timing: Timing | None = None,
) -> list[Decision]:
    """The decisions from step `start` until the walk must stop.

    `blocked(step)` answers why an action may not run for the profile right now, or None
    when it may: an email/SMS action may not reach the profile (F6), an internal alert
    is about a person an erase holds (P2). `timing(step)`, asked of a live action that
    may reach the profile, answers whether it must wait (quiet hours, F8) or is skipped
    (smart sending, F9); a wait stops the walk."""
    steps = {s.id: s for s in flow.steps}
    decisions: list[Decision] = []
    current = start
    guard = len(steps) + 1  # validated flows are acyclic; this is only a backstop
    while current is not None and guard > 0:
        guard -= 1
        step = steps.get(current)
        if step is None:
            decisions.append(Exit(f"Exited: step '{current}' does not exist"))
            return decisions
        if isinstance(step, DelayStep):
            if step.seconds > 0:
                decisions.append(Scheduled(step.id, step.seconds))
                return decisions
            current = step.next
            continue
        if isinstance(step, SplitStep):
            current = step.yes if evaluate(step.condition, context) else step.no
            continue
        if not passes_profile_filter(flow, context):
            decisions.append(Skip(step.id, SKIPPED_FILTER))
            decisions.append(Exit(SKIPPED_FILTER))
            return decisions
        if step.mode == "draft":
            decisions.append(Skip(step.id, SKIPPED_DRAFT))
        elif reason := blocked(step):
            decisions.append(Skip(step.id, reason))
        elif step.mode == "manual":
            decisions.append(HoldForReview(step))
        elif timing is not None and (later := timing(step)) is not None:
            decisions.append(later)
            if isinstance(later, Wait):
                return decisions
        else:
            decisions.append(Execute(step))
        current = step.next
    decisions.append(Exit(COMPLETED))
    return decisions


def resume(
    flow: FlowDefinition,
    delay_step_id: str,
    context: Mapping[str, Any],
    blocked: Callable[[ActionStep], str | None],
    timing: Timing | None = None,
) -> list[Decision]:
    """The decisions when the delay `delay_step_id` is due, walking `flow` (the version
    in force now) from the step after that delay."""
    step = next((s for s in flow.steps if s.id == delay_step_id), None)
    if not isinstance(step, DelayStep):
        return [Exit(f"Exited: step '{delay_step_id}' is not in version {flow.version}")]
    return advance(flow, step.next, context, blocked, timing)


def retry(
    flow: FlowDefinition,
    step_id: str,
    context: Mapping[str, Any],
    blocked: Callable[[ActionStep], str | None],
    timing: Timing | None = None,
) -> list[Decision]:
    """The decisions when a message step held by quiet hours is due (F8): the step
    itself again, in the version in force now (consent is checked again, F6), then on."""
    step = next((s for s in flow.steps if s.id == step_id), None)
    if not isinstance(step, EmailStep | SmsStep):
        return [Exit(f"Exited: step '{step_id}' is not in version {flow.version}")]
    return advance(flow, step_id, context, blocked, timing)
