"""Planning a batch of walks (F3-F6). Pure: the walker's decisions become typed effects
(rows to write, requests to send, activity to publish), collected for the whole batch
so that the adapter writes each table with one statement.

Nothing here knows whether an effect is new. Each request and most activity wait on the
row that proves it (an execution or a timer inserted for the first time, F4); the
handler asks the repository which rows are new and then `RunPlan` says what to send.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from services.flow_executor.domain import sending_window, smart_sending
from services.flow_executor.domain.reachability import Grounds, blocked_reason, step_grounds
from services.flow_executor.domain.runs import (
    UNKNOWN_PROFILE,
    ProfileKey,
    ProfileState,
    Run,
    StepKey,
    action_id,
)
from services.flow_executor.domain.walker import (
    COMPLETED,
    ActionStep,
    Decision,
    Execute,
    Exit,
    HoldForReview,
    Scheduled,
    Skip,
    Wait,
    advance,
    resume,
    retry,
)
from shared.contracts.flows import EmailStep, SmsStep

DELAY_PASSED = "delay passed"


@dataclass(frozen=True)
class Walk:
    """Walk `run` from the flow's first step, on from the delay step `after_delay`, or
    from the message step `at_step` that quiet hours held (F8)."""

    run: Run
    after_delay: str | None = None
    at_step: str | None = None


@dataclass(frozen=True)
class StepExecution:
    """A step's outcome in a run: `executed`, `in_review` or `skipped` (with a reason)."""

    run_id: uuid.UUID
    step_id: str
    account_id: str
    flow_id: str
    outcome: str
    reason: str | None = None

    @property
    def key(self) -> StepKey:
        return (self.run_id, self.step_id)


@dataclass(frozen=True)
class Timer:
    """A durable wait (F3): after the delay `step_id`, or (`kind` `quiet_hours`, F8)
    before the message step `step_id`, which is tried again at `due_at`."""

    run_id: uuid.UUID
    step_id: str
    due_at: datetime
    kind: Literal["delay", "quiet_hours"] = "delay"

    @property
    def key(self) -> StepKey:
        return (self.run_id, self.step_id)


@dataclass(frozen=True)
class RunEnd:
    """A run that ends now: `completed` or `exited`."""

    run_id: uuid.UUID
    status: Literal["completed", "exited"]


@dataclass(frozen=True)
class _ActionOfRun:
    """An action step of a run, done only when the step's execution is new (F4)."""

    run: Run
    step: ActionStep
    # C17: what the decision to send it rested on (email and SMS).
    grounds: Grounds | None = None

    @property
    def key(self) -> StepKey:
        return (self.run.run_id, self.step.id)


class Dispatch(_ActionOfRun):
    """Send the action's request (alert or message), once, when its execution is new."""


class Hold(_ActionOfRun):
    """Keep the action's request in review (F5), when its execution is new."""


@dataclass(frozen=True)
class Activity:
    """One `flow-activity` entry. `gate` names the row that proves it new: the step's
    execution, the delay's timer, or none (published whenever it is planned)."""

    kind: str
    account_id: str
    flow_id: str
    run_id: uuid.UUID
    profile_id: str
    step_id: str | None = None
    reason: str | None = None
    due_at: datetime | None = None
    alert_id: str | None = None
    gate: Literal["step", "timer"] | None = None
    # C17: on an email or SMS step executed or skipped after its reachability check, the
    # receipt and suppressions the decision rested on.
    grounds: Grounds | None = None

    @property
    def key(self) -> StepKey | None:
        return None if self.step_id is None else (self.run_id, self.step_id)


def activity(
    run: Run,
    kind: str,
    step_id: str | None,
    reason: str | None = None,
    *,
    due_at: datetime | None = None,
    alert_id: str | None = None,
    gated: bool = True,
    grounds: Grounds | None = None,
) -> Activity:
    """An activity of `run`. Gated on its step's row unless it has no step, or is an
    exit (a run ends once: its status update is idempotent)."""
    gate: Literal["step", "timer"] | None = None
    if gated and step_id is not None and kind != "exited":
        gate = "timer" if kind == "scheduled" else "step"
    return Activity(
        kind,
        run.account_id,
        run.flow_id,
        run.run_id,
        run.profile_id,
        step_id,
        reason,
        due_at,
        alert_id,
        gate,
        grounds,
    )


@dataclass(frozen=True)
class Sent:
    """A message request published to a profile on a channel (F9 remembers it)."""

    account_id: str
    profile_id: str
    channel: str
    at: datetime


Effect = StepExecution | Timer | RunEnd | Dispatch | Hold | Activity


@dataclass(frozen=True)
class RunPlan:
    """The effects of a batch of walks, by kind, each in the order it was decided."""

    executions: tuple[StepExecution, ...] = ()
    timers: tuple[Timer, ...] = ()
    ends: tuple[RunEnd, ...] = ()
    dispatches: tuple[Dispatch, ...] = ()
    holds: tuple[Hold, ...] = ()
    activities: tuple[Activity, ...] = ()

    @classmethod
    def of(cls, effects: Iterable[Effect]) -> RunPlan:
        effects = list(effects)

        def only(kind: type) -> tuple:
            return tuple(e for e in effects if isinstance(e, kind))

        return cls(
            executions=only(StepExecution),
            timers=only(Timer),
            ends=only(RunEnd),
            dispatches=only(Dispatch),
            holds=only(Hold),
            activities=only(Activity),
        )

    def of_runs(self, run_ids: Collection[uuid.UUID]) -> RunPlan:
        """The effects of the runs in `run_ids` only, in the same order."""
        return RunPlan(
            executions=tuple(e for e in self.executions if e.run_id in run_ids),
            timers=tuple(t for t in self.timers if t.run_id in run_ids),
            ends=tuple(e for e in self.ends if e.run_id in run_ids),
            dispatches=tuple(d for d in self.dispatches if d.run.run_id in run_ids),
            holds=tuple(h for h in self.holds if h.run.run_id in run_ids),
            activities=tuple(a for a in self.activities if a.run_id in run_ids),
        )

    def holds_to_keep(self, new_steps: Collection[StepKey]) -> list[Hold]:
        """F4: a hold whose execution existed already was kept before."""
        return [h for h in self.holds if h.key in new_steps]

    def requests_to_send(self, new_steps: Collection[StepKey]) -> list[Dispatch]:
        """F4: an action already executed in this run is not sent again."""
        return [d for d in self.dispatches if d.key in new_steps]

    def activity_to_publish(
        self, new_steps: Collection[StepKey], new_timers: Collection[StepKey]
    ) -> list[Activity]:
        """Each activity once: those gated on a row only when that row is new."""
        return [
            a
            for a in self.activities
            if a.gate is None or a.key in (new_timers if a.gate == "timer" else new_steps)
        ]


def sent_by(plan: RunPlan, new_steps: Collection[StepKey], at: datetime) -> list[Sent]:
    """F9: the messages (email, SMS) among the requests the plan sends."""
    return [
        Sent(d.run.account_id, d.run.profile_id, smart_sending.channel_of(d.step), at)
        for d in plan.requests_to_send(new_steps)
        if isinstance(d.step, EmailStep | SmsStep)
    ]


SentLog = dict[tuple[str, str, str], datetime]
"""(account, profile, channel) -> when a message went in this batch (F9)."""


def plan_walks(
    walks: Sequence[Walk],
    state: Mapping[ProfileKey, ProfileState],
    now: datetime,
    settings: Mapping[str, sending_window.SendingSettings] | None = None,
) -> RunPlan:
    """The effects of walking every run in `walks`. Splits, filters and reachability see
    the newest profile data the executor has (F3), else what the run started with.
    `settings`: each account's sending window (F8; the default when absent). A message
    this batch sends counts for smart sending of the walks after it (F9)."""
    sent: SentLog = {}
    return RunPlan.of(e for walk in walks for e in _walk(walk, state, now, settings or {}, sent))


def _timing(
    run: Run,
    known: ProfileState,
    person: Mapping[str, Any],
    now: datetime,
    settings: sending_window.SendingSettings,
    sent: SentLog,
) -> Callable[[ActionStep], Wait | Skip | None]:
    """F8 then F9 for a live message step that may reach the profile."""

    def timing(step: ActionStep) -> Wait | Skip | None:
        if not isinstance(step, EmailStep | SmsStep):
            return None
        if sending_window.keeps_quiet_hours(step, settings):
            until = sending_window.hold_until(settings, person, now)
            if until is not None:
                return Wait(step.id, until, sending_window.WAITING_QUIET_HOURS)
        channel = smart_sending.channel_of(step)
        key = (run.account_id, run.profile_id, channel)
        last = max(filter(None, (known.last_sent.get(channel), sent.get(key))), default=None)
        if smart_sending.skips(step, last, now):
            return Skip(step.id, smart_sending.SKIPPED_SMART_SENDING)
        sent[key] = now
        return None

    return timing


def _walk(
    walk: Walk,
    state: Mapping[ProfileKey, ProfileState],
    now: datetime,
    settings: Mapping[str, sending_window.SendingSettings],
    sent: SentLog,
) -> list[Effect]:
    stored = walk.run
    known = state.get((stored.account_id, stored.profile_id), UNKNOWN_PROFILE)
    person = known.profile or stored.context.get("person", {})
    run = replace(stored, context={**stored.context, "person": person})
    account = settings.get(run.account_id, sending_window.DEFAULT_SETTINGS)
    timing = _timing(run, known, person, now, account, sent)

    grounds: dict[str, Grounds] = {}

    def blocked(step: ActionStep) -> str | None:
        found = step_grounds(step, known.consent, known.suppressions, known.receipts, known.erasure)
        if found is not None:
            grounds[step.id] = found
        return blocked_reason(step, known.consent, known.suppressions, person, known.erasure)

    effects: list[Effect] = []
    if walk.at_step is not None:
        decisions = retry(run.flow, walk.at_step, run.context, blocked, timing)
    elif walk.after_delay is None:
        decisions = advance(run.flow, run.flow.steps[0].id, run.context, blocked, timing)
    else:
        decisions = resume(run.flow, walk.after_delay, run.context, blocked, timing)
        effects.append(activity(run, "executed", walk.after_delay, DELAY_PASSED, gated=False))
    for decision in decisions:
        effects += effects_of(run, decision, now, grounds)
    return effects


def effects_of(
    run: Run, decision: Decision, now: datetime, grounds: Mapping[str, Grounds] | None = None
) -> list[Effect]:
    """What one decision of the walker writes and publishes. `grounds`: per step id, what
    its reachability check rested on (C17), carried by its request and activity."""
    grounds = grounds or {}
    if isinstance(decision, Scheduled):
        due = now + timedelta(seconds=decision.seconds)
        return [
            Timer(run.run_id, decision.step_id, due),
            activity(run, "scheduled", decision.step_id, due_at=due),
        ]
    if isinstance(decision, Wait):
        return [
            Timer(run.run_id, decision.step_id, decision.until, "quiet_hours"),
            activity(run, "scheduled", decision.step_id, decision.reason, due_at=decision.until),
        ]
    if isinstance(decision, Execute):
        step = decision.step
        found = grounds.get(step.id)
        return [
            _execution(run, step.id, "executed"),
            Dispatch(run, step, found),
            activity(run, "executed", step.id, grounds=found),
        ]
    if isinstance(decision, HoldForReview):
        step = decision.step
        return [
            _execution(run, step.id, "in_review"),
            Hold(run, step, grounds.get(step.id)),
            activity(run, "in_review", step.id, alert_id=action_id(run.run_id, step.id)),
        ]
    if isinstance(decision, Skip):
        found = grounds.get(decision.step_id)
        return [
            _execution(run, decision.step_id, "skipped", decision.reason),
            activity(run, "skipped", decision.step_id, decision.reason, grounds=found),
        ]
    assert isinstance(decision, Exit)
    status: Literal["completed", "exited"] = (
        "completed" if decision.reason == COMPLETED else "exited"
    )
    return [RunEnd(run.run_id, status), activity(run, "exited", None, decision.reason)]


def _execution(run: Run, step_id: str, outcome: str, reason: str | None = None) -> StepExecution:
    return StepExecution(run.run_id, step_id, run.account_id, run.flow_id, outcome, reason)
