"""The flow executor's use cases: save definitions, enter profiles, fire delays, apply
review decisions, and keep the read model of profiles, consent and suppressions. Each
takes a unit of work and a batch, asks the pure domain for decisions, and turns them
into rows and outbox messages with one statement per table per batch."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import TypeAdapter

from services.flow_executor.adapters import repository as repo
from services.flow_executor.domain.reachability import blocked_reason
from services.flow_executor.domain.triggers import (
    event_context,
    list_context,
    list_flows,
    merged_person,
    metric_flows,
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
    advance,
    resume,
)
from shared.contracts import (
    AlertContent,
    AlertRequested,
    ConsentChanged,
    FlowActivity,
    FlowDefinition,
    MessageRequested,
    Profile,
    ProfileEvent,
    ReviewDecision,
    SuppressionChanged,
    topics,
    utcnow,
)
from shared.contracts.flows import (
    EmailStep,
    FlowDeleted,
    InternalAlertStep,
    SmsStep,
    Step,
    parse_flow_record,
)
from shared.db.uow import UnitOfWork
from shared.domain.flow_rules import flow_problems
from shared.kafka import Received, dead_letter

DEFINITIONS = "flow_executor.flow-definitions"
RUN_NAMESPACE = uuid.UUID("6f1c2b1e-7d1a-4c47-9f0e-0c7f3b1f5a10")
REJECTED = "Skipped: rejected in review"
FLOW_DELETED = "Exited: flow deleted"

_step = TypeAdapter(Step)


# --- F1: definitions -------------------------------------------------------------------


@dataclass(frozen=True)
class DefinitionRecord:
    """A parsed `flow-definitions` record and the id that dedupes its redelivery: the
    record's position plus a digest of its bytes (a re-published identical definition
    sits at another offset and is processed again)."""

    message: FlowDefinition | FlowDeleted
    message_id: str


def parse_definition(record: ConsumerRecord) -> DefinitionRecord:
    """A definition, or a deletion for a tombstone; raises on a bad shape (dead letter)."""
    message = parse_flow_record(record.key, record.value)
    digest = hashlib.sha256((record.key or b"") + b"\0" + (record.value or b"")).hexdigest()
    return DefinitionRecord(message, f"{record.partition}:{record.offset}:{digest[:32]}")


async def save_definitions(uow: UnitOfWork, items: list[Received[DefinitionRecord]]) -> None:
    """F1: a valid higher version replaces the one in force; an invalid one is
    dead-lettered with the reasons and the previous version stays. A tombstone deletes
    the flow: no new entries, waiting runs exit and held reviews are cancelled."""
    for item in items:
        msg = item.message.message
        if isinstance(msg, FlowDeleted):
            runs, reviews = await repo.delete_flow(uow.conn, msg.account_id, msg.flow_id)
            for run in runs:
                _publish_activity(
                    uow,
                    "exited",
                    msg.account_id,
                    msg.flow_id,
                    run["run_id"],
                    run["profile_id"],
                    None,
                    FLOW_DELETED,
                )
            for review in reviews:
                _publish_activity(
                    uow,
                    "skipped",
                    msg.account_id,
                    msg.flow_id,
                    review["run_id"],
                    review["profile_id"],
                    review["step_id"],
                    "Skipped: flow deleted",
                )
            continue
        errors = flow_problems(msg)
        if errors:
            await repo.reject_flow(uow.conn, msg, errors)
            dead_letter(uow, DEFINITIONS, item.record, "invalid flow: " + "; ".join(errors))
            continue
        await repo.save_flow(uow.conn, msg)


# --- walking runs (F2-F6) --------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A profile's way through one flow, started by one event."""

    run_id: uuid.UUID
    flow: FlowDefinition
    profile_id: str
    context: dict[str, Any]
    trigger_type: str
    event_id: str = ""


def run_id_for(account_id: str, flow_id: str, event_id: str) -> uuid.UUID:
    """One run per flow and triggering event (F2: an event never enters twice)."""
    return uuid.uuid5(RUN_NAMESPACE, f"{account_id}:{flow_id}:{event_id}")


def action_id(run_id: uuid.UUID, step_id: str) -> str:
    """The id of an action's request (`alert_id` / `request_id`): one per run and step,
    so the consumer's inbox also refuses a second copy (F4)."""
    return f"{run_id}:{step_id}"


def alert_request(run: Run, step: InternalAlertStep) -> AlertRequested:
    return AlertRequested(
        alert_id=action_id(run.run_id, step.id),
        account_id=run.flow.account_id,
        flow_id=run.flow.flow_id,
        flow_version=run.flow.version,
        step_id=step.id,
        profile_id=run.profile_id,
        profile=Profile.model_validate(run.context["person"]),
        event=run.context.get("event", {}) if run.trigger_type == "metric" else {},
        trigger_type=run.trigger_type,  # type: ignore[arg-type]
        action=AlertContent(
            recipients=step.recipients,
            from_email=step.from_email,
            from_name=step.from_name,
            reply_to=step.reply_to,
            subject=step.subject,
            body=step.body,
        ),
    )


def message_request(run: Run, step: EmailStep | SmsStep) -> MessageRequested:
    email = isinstance(step, EmailStep)
    return MessageRequested(
        request_id=action_id(run.run_id, step.id),
        account_id=run.flow.account_id,
        flow_id=run.flow.flow_id,
        step_id=step.id,
        channel=step.type,
        profile_id=run.profile_id,
        profile=Profile.model_validate(run.context["person"]),
        template_id=step.template_id if email else None,
        run_id=str(run.run_id),
        flow_version=run.flow.version,
        subject=step.subject if email else None,
        body=None if email else step.body,
        list_id=step.list_id if email else None,
        purpose=None if email else step.purpose,
        client_id=step.client_id,
        user_id=step.user_id,
    )


def _request(run: Run, step: ActionStep) -> tuple[str, AlertRequested | MessageRequested]:
    if isinstance(step, InternalAlertStep):
        return topics.ALERT_REQUESTS, alert_request(run, step)
    return topics.MESSAGE_REQUESTS, message_request(run, step)


def _activity(
    kind: str,
    account_id: str,
    flow_id: str,
    run_id: uuid.UUID,
    profile_id: str,
    step_id: str | None,
    reason: str | None = None,
    due_at: datetime | None = None,
    alert_id: str | None = None,
) -> FlowActivity:
    return FlowActivity(
        type=kind,  # type: ignore[arg-type]
        activity_id=f"{run_id}:{step_id or '-'}:{kind}",
        account_id=account_id,
        flow_id=flow_id,
        step_id=step_id,
        run_id=str(run_id),
        profile_id=profile_id,
        reason=reason,
        due_at=due_at,
        alert_id=alert_id,
    )


def _publish_activity(
    uow: UnitOfWork,
    kind: str,
    account_id: str,
    flow_id: str,
    run_id: uuid.UUID,
    profile_id: str,
    step_id: str | None,
    reason: str | None = None,
) -> None:
    uow.publish(
        topics.FLOW_ACTIVITY,
        profile_id,
        _activity(kind, account_id, flow_id, run_id, profile_id, step_id, reason),
    )


StepKey = tuple[uuid.UUID, str]


@dataclass
class _Effects:
    """What a batch of walks writes, collected so each table gets one statement. Each
    message and activity waits on the row that proves it is new (F4)."""

    executions: list[tuple[uuid.UUID, str, str, str, str, str | None]] = field(default_factory=list)
    timers: list[tuple[uuid.UUID, str, datetime]] = field(default_factory=list)
    reviews: list[tuple[Any, ...]] = field(default_factory=list)
    finished: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    messages: list[tuple[StepKey, str, str, Any]] = field(default_factory=list)
    activity: list[tuple[StepKey | None, str, FlowActivity]] = field(default_factory=list)


def _plan(run: Run, decisions: Sequence[Decision], fx: _Effects, now: datetime) -> None:
    flow = run.flow

    def note(
        kind: str, step_id: str | None, reason: str | None = None, due=None, alert_id=None
    ) -> None:
        key = (run.run_id, step_id) if step_id is not None and kind != "exited" else None
        act = _activity(
            kind,
            flow.account_id,
            flow.flow_id,
            run.run_id,
            run.profile_id,
            step_id,
            reason,
            due,
            alert_id,
        )
        fx.activity.append((key, "timer" if kind == "scheduled" else "step", act))

    def execution(step_id: str, outcome: str, reason: str | None = None) -> None:
        fx.executions.append((run.run_id, step_id, flow.account_id, flow.flow_id, outcome, reason))

    for d in decisions:
        if isinstance(d, Scheduled):
            due = now + timedelta(seconds=d.seconds)
            fx.timers.append((run.run_id, d.step_id, due))
            note("scheduled", d.step_id, due=due)
        elif isinstance(d, Execute):
            execution(d.step.id, "executed")
            topic, msg = _request(run, d.step)
            fx.messages.append(((run.run_id, d.step.id), topic, run.profile_id, msg))
            note("executed", d.step.id)
        elif isinstance(d, HoldForReview):
            execution(d.step.id, "in_review")
            _, msg = _request(run, d.step)
            fx.reviews.append(
                (
                    action_id(run.run_id, d.step.id),
                    run.run_id,
                    d.step.id,
                    flow.account_id,
                    flow.flow_id,
                    run.profile_id,
                    d.step.model_dump(mode="json"),
                    msg.model_dump(mode="json"),
                )
            )
            note("in_review", d.step.id, alert_id=action_id(run.run_id, d.step.id))
        elif isinstance(d, Skip):
            execution(d.step_id, "skipped", d.reason)
            note("skipped", d.step_id, d.reason)
        elif isinstance(d, Exit):
            fx.finished.append((run.run_id, "completed" if d.reason == COMPLETED else "exited"))
            note("exited", None, d.reason)


async def _walk(uow: UnitOfWork, walks: Sequence[tuple[Run, str | None]]) -> None:
    """Advance each run and write the effects in one go. A walk starts at the flow's
    first step (`None`) or resumes after the delay step it names."""
    state = await repo.walk_state(
        uow.conn, ((run.flow.account_id, run.profile_id) for run, _ in walks)
    )
    fx = _Effects()
    now = utcnow()
    for stored, delay_step in walks:
        consent, suppressions, profile = state.get(
            (stored.flow.account_id, stored.profile_id), (None, [], None)
        )
        # Splits and filters see the newest profile data the executor has (F3).
        person = profile or stored.context.get("person", {})
        run = Run(
            stored.run_id,
            stored.flow,
            stored.profile_id,
            {**stored.context, "person": person},
            stored.trigger_type,
            stored.event_id,
        )

        def blocked(step: EmailStep | SmsStep, c=consent, s=suppressions, p=person) -> str | None:
            return blocked_reason(step, c, s, p)

        if delay_step is None:
            decisions = advance(run.flow, run.flow.steps[0].id, run.context, blocked)
        else:
            decisions = resume(run.flow, delay_step, run.context, blocked)
            act = _activity(
                "executed",
                run.flow.account_id,
                run.flow.flow_id,
                run.run_id,
                run.profile_id,
                delay_step,
                "delay passed",
            )
            fx.activity.append((None, "step", act))
        _plan(run, decisions, fx, now)
    new_steps = await repo.record_executions(uow.conn, fx.executions)
    new_timers = await repo.add_timers(uow.conn, fx.timers)
    await repo.add_reviews(uow.conn, [r for r in fx.reviews if (r[1], r[2]) in new_steps])
    await repo.finish_runs(uow.conn, fx.finished)
    for key, topic, msg_key, msg in fx.messages:
        if key in new_steps:  # F4: an action already executed in this run is not sent again
            uow.publish(topic, msg_key, msg)
    for key, kind, act in fx.activity:
        if key is None or key in (new_timers if kind == "timer" else new_steps):
            uow.publish(topics.FLOW_ACTIVITY, act.profile_id, act)


async def _enter(uow: UnitOfWork, entries: Sequence[Run]) -> None:
    """Create the runs that are new and walk them from the first step. A second copy of
    an event in the same batch is a duplicate: the first one enters (F2)."""
    runs: dict[uuid.UUID, Run] = {}
    for r in entries:
        runs.setdefault(r.run_id, r)
    new = await repo.insert_runs(
        uow.conn,
        [
            {
                "run_id": r.run_id,
                "account_id": r.flow.account_id,
                "flow_id": r.flow.flow_id,
                "flow_version": r.flow.version,
                "event_id": r.event_id,
                "profile_id": r.profile_id,
                "trigger_type": r.trigger_type,
                "context": r.context,
            }
            for r in runs.values()
        ],
    )
    fresh = [r for rid, r in runs.items() if rid in new]
    for r in fresh:
        uow.publish(
            topics.FLOW_ACTIVITY,
            r.profile_id,
            _activity(
                "entered",
                r.flow.account_id,
                r.flow.flow_id,
                r.run_id,
                r.profile_id,
                None,
                r.trigger_type,
            ),
        )
    if fresh:
        await _walk(uow, [(r, None) for r in fresh])


def _new_run(
    flow: FlowDefinition, event_id: str, profile_id: str, context: dict[str, Any], trigger: str
) -> Run:
    return Run(
        run_id_for(flow.account_id, flow.flow_id, event_id),
        flow,
        profile_id,
        context,
        trigger,
        event_id,
    )


async def enter_from_events(uow: UnitOfWork, items: list[Received[ProfileEvent]]) -> None:
    """F2: each event enters the metric flows it matches, once per event id; the newest
    profile data of accounts with flows is kept for later splits and filters (F3).

    Events are not claimed in the inbox: most enter no flow, and claiming each cost a
    row per event, a quarter of the batch's database time. Both effects are safe to
    repeat without it. An entry is a run whose id derives from the event id, inserted
    with `ON CONFLICT DO NOTHING`, and only a new run is walked, so a redelivered event
    never enters twice (and runs are kept longer than inbox ids). The profile merge only
    takes data at least as new as what is stored; a redelivered batch is replayed in its
    partition's order, so it ends in the same state."""
    events = [i.message for i in items]
    flows = await repo.live_flows(uow.conn, (e.account_id for e in events))
    # F3: the entry filter sees the profile the executor keeps (as stored before this
    # batch) with this event's own fields merged in, not only what the event carried.
    stored = await repo.walk_state(
        uow.conn, ((e.account_id, e.profile.id) for e in events if e.account_id in flows)
    )
    await repo.upsert_profiles(
        uow.conn,
        [
            (e.account_id, e.profile.id, e.profile.model_dump_json(), e.time)
            for e in events
            if e.account_id in flows
        ],
    )
    entries = []
    for e in events:
        if e.account_id not in flows:
            continue
        known = stored.get((e.account_id, e.profile.id), (None, [], None))[2]
        person = merged_person(known, e.profile.model_dump(mode="json"))
        entries += [
            _new_run(flow, e.event_id, e.profile.id, event_context(e, person), "metric")
            for flow in metric_flows(flows[e.account_id], e, person)
        ]
    if entries:
        await _enter(uow, entries)


async def on_consent_changes(uow: UnitOfWork, items: list[Received[ConsentChanged]]) -> None:
    """F7: keep the newest consent state per profile; F2: `Subscribed to List` enters
    list-triggered flows."""
    changes = [i.message for i in items]
    await repo.save_consent(
        uow.conn,
        [
            (c.account_id, c.profile_id, c.state.model_dump(mode="json"), c.occurred_at)
            for c in changes
        ],
    )
    flows = await repo.live_flows(uow.conn, (c.account_id for c in changes))
    if not flows:
        return
    stored = await repo.walk_state(
        uow.conn, ((c.account_id, c.profile_id) for c in changes if c.account_id in flows)
    )
    await repo.upsert_profiles(
        uow.conn,
        [
            (c.account_id, c.profile_id, c.profile.model_dump_json(), c.occurred_at)
            for c in changes
            if c.account_id in flows
        ],
    )
    entries = []
    for c in changes:
        if c.account_id not in flows:
            continue
        known = stored.get((c.account_id, c.profile_id), (None, [], None))[2]
        person = merged_person(known, c.profile.model_dump(mode="json"))
        entries += [
            _new_run(flow, c.change_id, c.profile_id, list_context(c, person), "list")
            for flow in list_flows(flows[c.account_id], c, person)
        ]
    if entries:
        await _enter(uow, entries)


async def on_suppression_changes(
    uow: UnitOfWork, items: list[Received[SuppressionChanged]]
) -> None:
    """F7: keep the suppressions in force per profile."""
    await repo.save_suppressions(
        uow.conn,
        [
            (c.account_id, c.profile_id, c.suppressions, c.occurred_at)
            for c in (i.message for i in items)
        ],
    )


async def fire_due_timers(uow: UnitOfWork, limit: int, replica: str) -> int:
    """F3: resume every run whose delay is due. The row lock makes each fire once even
    with several replicas, and the mark commits with the walk's effects. A run resumes
    in the version in force now; a run of a deleted flow exits."""
    rows = await repo.claim_due_timers(uow.conn, limit, replica)
    if not rows:
        return 0
    flows = await repo.flows_by_key(uow.conn, ((r["account_id"], r["flow_id"]) for r in rows))
    walks = []
    gone = []
    for r in rows:
        flow = flows.get((r["account_id"], r["flow_id"]))
        if flow is None:
            gone.append((r["run_id"], "exited"))
            _publish_activity(
                uow,
                "exited",
                r["account_id"],
                r["flow_id"],
                r["run_id"],
                r["profile_id"],
                None,
                FLOW_DELETED,
            )
            continue
        run = Run(r["run_id"], flow, r["profile_id"], r["context"], r["trigger_type"])
        walks.append((run, r["step_id"]))
    await repo.finish_runs(uow.conn, gone)
    if walks:
        await _walk(uow, walks)
    return len(rows)


# --- F5: reviews -----------------------------------------------------------------------


async def decide_reviews(uow: UnitOfWork, decisions: Sequence[ReviewDecision]) -> dict[str, str]:
    """F5: approve sends the held action as it was held (an email or SMS is checked
    against reachability again, since it runs now, F6); reject records it as skipped.
    Returns the new status per alert id; an unknown or decided alert is left alone."""
    results: dict[str, str] = {}
    for d in decisions:
        status = "approved" if d.decision == "approve" else "rejected"
        row = await repo.decide_review(uow.conn, d.alert_id, status, d.by)
        if row is None:
            continue
        step = _step.validate_python(row["step"]) if row["step"] else None
        request = row["request"] or {}
        reason: str | None = REJECTED if status == "rejected" else None
        if reason is None and isinstance(step, EmailStep | SmsStep):
            state = await repo.walk_state(uow.conn, [(row["account_id"], row["profile_id"])])
            consent, suppressions, profile = state.get(
                (row["account_id"], row["profile_id"]), (None, [], None)
            )
            reason = blocked_reason(
                step, consent, suppressions, profile or request.get("profile") or {}
            )
        if reason is None:
            if isinstance(step, InternalAlertStep):
                uow.publish(
                    topics.ALERT_REQUESTS, row["profile_id"], AlertRequested.model_validate(request)
                )
            else:
                uow.publish(
                    topics.MESSAGE_REQUESTS,
                    row["profile_id"],
                    MessageRequested.model_validate(request),
                )
        outcome = "executed" if reason is None else "skipped"
        await repo.set_execution(uow.conn, row["run_id"], row["step_id"], outcome, reason)
        _publish_activity(
            uow,
            outcome,
            row["account_id"],
            row["flow_id"],
            row["run_id"],
            row["profile_id"],
            row["step_id"],
            reason,
        )
        results[d.alert_id] = status
    return results


async def on_review_decisions(uow: UnitOfWork, items: list[Received[ReviewDecision]]) -> None:
    """F5 from `review-decisions` (the HTTP route does the same for one alert)."""
    await decide_reviews(uow, [i.message for i in items])
