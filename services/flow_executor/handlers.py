"""The flow executor's use cases: save definitions, enter profiles, fire delays, apply
review decisions, and keep the reachability read model. Each takes a unit of work and a
batch, and turns the pure domain's decisions into rows and outbox messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiokafka import ConsumerRecord

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
from shared.contracts.flows import FlowDeleted, InternalAlertStep, parse_flow_record
from shared.db.uow import UnitOfWork
from shared.kafka import Received, Rejected, dead_letter
from services.flow_executor.adapters import repository as repo
from services.flow_executor.domain.graph import validate
from services.flow_executor.domain.reachability import blocked_reason
from services.flow_executor.domain.triggers import event_context, list_flows, metric_flows
from services.flow_executor.domain.walker import (
    Decision,
    Execute,
    Exit,
    HoldForReview,
    Scheduled,
    Skip,
    advance,
)

DEFINITIONS = "flow_executor.flow-definitions"
RUN_NAMESPACE = uuid.UUID("6f1c2b1e-7d1a-4c47-9f0e-0c7f3b1f5a10")


def parse_definition(record: ConsumerRecord) -> FlowDefinition | FlowDeleted:
    return parse_flow_record(record.key, record.value)


async def save_definitions(uow: UnitOfWork, items: list[Received[Any]]) -> None:
    """F1: a valid higher version replaces the one in force; an invalid one is
    dead-lettered with the reasons and the previous version stays."""
    for item in items:
        msg = item.message
        if isinstance(msg, FlowDeleted):
            await repo.delete_flow(uow.conn, msg.account_id, msg.flow_id)
            continue
        errors = validate(msg)
        if errors:
            await repo.reject_flow(uow.conn, msg, errors)
            dead_letter(uow, DEFINITIONS, item.record, "invalid flow: " + "; ".join(errors))
            continue
        await repo.save_flow(uow.conn, msg)


@dataclass
class _Effects:
    """What a batch of walks writes, collected so each table gets one statement."""

    executions: list[tuple[uuid.UUID, str, str, str, str, str | None]] = field(default_factory=list)
    timers: list[tuple[uuid.UUID, str, str | None, Any]] = field(default_factory=list)
    reviews: list[tuple[str, uuid.UUID, str, str, str]] = field(default_factory=list)
    finished: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    messages: dict[tuple[uuid.UUID, str], tuple[str, str, Any]] = field(default_factory=dict)
    activity: list[FlowActivity] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    run_id: uuid.UUID
    flow: FlowDefinition
    profile_id: str
    context: dict[str, Any]
    trigger_type: str


def _alert_id(run_id: uuid.UUID, step_id: str) -> str:
    return f"{run_id}:{step_id}"


def alert_request(run: Run, step: InternalAlertStep) -> AlertRequested:
    return AlertRequested(
        alert_id=_alert_id(run.run_id, step.id),
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


def _plan(run: Run, decisions: Sequence[Decision], fx: _Effects) -> None:
    flow = run.flow
    now = utcnow()

    def activity(kind: str, step_id: str | None, reason: str | None = None, due=None) -> None:
        fx.activity.append(
            FlowActivity(
                type=kind,  # type: ignore[arg-type]
                activity_id=f"{run.run_id}:{step_id}:{kind}",
                account_id=flow.account_id,
                flow_id=flow.flow_id,
                step_id=step_id,
                run_id=str(run.run_id),
                profile_id=run.profile_id,
                reason=reason,
                due_at=due,
            )
        )

    for d in decisions:
        if isinstance(d, Scheduled):
            due = now + timedelta(seconds=d.seconds)
            fx.timers.append((run.run_id, d.step_id, d.resume_at, due))
            activity("scheduled", d.step_id, due=due)
        elif isinstance(d, Execute):
            step = d.step
            fx.executions.append((run.run_id, step.id, flow.account_id, flow.flow_id, "executed", None))
            if isinstance(step, InternalAlertStep):
                msg: Any = alert_request(run, step)
                fx.messages[(run.run_id, step.id)] = (topics.ALERT_REQUESTS, run.profile_id, msg)
            else:
                msg = MessageRequested(
                    request_id=_alert_id(run.run_id, step.id),
                    account_id=flow.account_id,
                    flow_id=flow.flow_id,
                    step_id=step.id,
                    channel=step.type,  # type: ignore[arg-type]
                    profile_id=run.profile_id,
                    profile=Profile.model_validate(run.context["person"]),
                    template_id=getattr(step, "template_id", None),
                )
                fx.messages[(run.run_id, step.id)] = (topics.MESSAGE_REQUESTS, run.profile_id, msg)
            activity("executed", step.id)
        elif isinstance(d, HoldForReview):
            fx.executions.append(
                (run.run_id, d.step.id, flow.account_id, flow.flow_id, "in_review", None)
            )
            fx.reviews.append(
                (_alert_id(run.run_id, d.step.id), run.run_id, d.step.id, flow.account_id, flow.flow_id)
            )
            activity("in_review", d.step.id)
        elif isinstance(d, Skip):
            fx.executions.append(
                (run.run_id, d.step_id, flow.account_id, flow.flow_id, "skipped", d.reason)
            )
            activity("skipped", d.step_id, d.reason)
        elif isinstance(d, Exit):
            fx.finished.append((run.run_id, "completed" if d.reason == "completed" else "exited"))
            activity("exited", None, d.reason)


async def _walk(uow: UnitOfWork, walks: Sequence[tuple[Run, str | None]]) -> None:
    """Advance each run from its step and write the effects in one go."""
    reach = await repo.reachability(
        uow.conn, ((run.flow.account_id, run.profile_id) for run, _ in walks)
    )
    fx = _Effects()
    for run, start in walks:
        consent, suppressions = reach.get((run.flow.account_id, run.profile_id), (None, []))
        decisions = advance(
            run.flow, start, run.context, lambda s: blocked_reason(s, consent, suppressions)
        )
        _plan(run, decisions, fx)
    new = await repo.record_executions(uow.conn, fx.executions)
    await repo.add_timers(uow.conn, fx.timers)
    await repo.add_reviews(uow.conn, [r for r in fx.reviews if (r[1], r[2]) in new])
    await repo.finish_runs(uow.conn, fx.finished)
    for key, (topic, msg_key, msg) in fx.messages.items():
        if key in new:  # F4: an action already executed in this run is not sent again
            uow.publish(topic, msg_key, msg)
    for act in fx.activity:
        uow.publish(topics.FLOW_ACTIVITY, act.profile_id, act)


async def _enter(uow: UnitOfWork, entries: list[tuple[FlowDefinition, str, str, dict, str]]) -> None:
    """Create runs for (flow, event_id, profile_id, context, trigger) and walk the new ones."""
    runs = {
        uuid.uuid5(RUN_NAMESPACE, f"{f.account_id}:{f.flow_id}:{event_id}"): Run(
            uuid.uuid5(RUN_NAMESPACE, f"{f.account_id}:{f.flow_id}:{event_id}"),
            f,
            profile_id,
            context,
            trigger,
        )
        for f, event_id, profile_id, context, trigger in entries
    }
    rows = [
        {
            "run_id": r.run_id,
            "account_id": r.flow.account_id,
            "flow_id": r.flow.flow_id,
            "flow_version": r.flow.version,
            "event_id": e[1],
            "profile_id": r.profile_id,
            "trigger_type": r.trigger_type,
            "context": r.context,
        }
        for r, e in zip(runs.values(), entries, strict=False)
    ]
    new = await repo.insert_runs(uow.conn, rows)
    await _walk(uow, [(runs[rid], runs[rid].flow.steps[0].id) for rid in runs if rid in new])


async def enter_from_events(uow: UnitOfWork, items: list[Received[ProfileEvent]]) -> None:
    """F2: each event enters the metric flows it matches, once per event id."""
    flows = await repo.live_flows(uow.conn, (i.message.account_id for i in items))
    entries = []
    for item in items:
        event = item.message
        for flow in metric_flows(flows.get(event.account_id, ()), event):
            ctx = event_context(event)
            entries.append((flow, event.event_id, event.profile.id, ctx, "metric"))
    if entries:
        await _enter(uow, entries)


async def on_consent_changes(uow: UnitOfWork, items: list[Received[ConsentChanged]]) -> None:
    """F7: keep the newest consent state per profile; F2: `Subscribed to List` enters
    list-triggered flows."""
    await repo.save_consent(
        uow.conn,
        [
            (c.account_id, c.profile_id, c.state.model_dump(mode="json"), c.occurred_at)
            for c in (i.message for i in items)
        ],
    )
    list_changes = [i.message for i in items if i.message.type == "Subscribed to List"]
    if not list_changes:
        return
    flows = await repo.live_flows(uow.conn, (c.account_id for c in list_changes))
    entries = []
    for change in list_changes:
        for flow in list_flows(flows.get(change.account_id, ()), change):
            ctx = {"event": {"list_id": change.list_id}, "person": change.profile.model_dump()}
            entries.append((flow, change.change_id, change.profile_id, ctx, "list"))
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


async def fire_due_timers(uow: UnitOfWork, limit: int = 500) -> int:
    """F3: resume every run whose delay is due; the row lock makes each fire once even
    with several replicas, and the mark commits with the walk's effects."""
    rows = await repo.claim_due_timers(uow.conn, limit)
    if not rows:
        return 0
    flows = await repo.flows_by_key(uow.conn, ((r["account_id"], r["flow_id"]) for r in rows))
    walks = []
    gone = []
    for r in rows:
        flow = flows.get((r["account_id"], r["flow_id"]))
        if flow is None:
            gone.append((r["run_id"], "exited"))
            continue
        run = Run(r["run_id"], flow, r["profile_id"], r["context"], r["trigger_type"])
        walks.append((run, r["resume_at"]))
    await repo.finish_runs(uow.conn, gone)
    await _walk(uow, walks)
    return len(rows)


async def decide_reviews(uow: UnitOfWork, decisions: Sequence[ReviewDecision]) -> dict[str, str]:
    """F5: approve sends the held alert; reject records it as skipped. Returns the new
    status per alert id; an unknown or already-decided alert is left as it is."""
    results: dict[str, str] = {}
    for d in decisions:
        row = await uow.conn.fetchrow(
            "UPDATE reviews SET status = $2, decided_by = $3, decided_at = now()"
            " WHERE alert_id = $1 AND status = 'in_review'"
            " RETURNING run_id, step_id, account_id, flow_id",
            d.alert_id,
            "approved" if d.decision == "approve" else "rejected",
            d.by,
        )
        if row is None:
            continue
        run_row = await uow.conn.fetchrow(
            "SELECT profile_id, context, trigger_type, flow_version FROM runs WHERE run_id = $1",
            row["run_id"],
        )
        flows = await repo.flows_by_key(uow.conn, [(row["account_id"], row["flow_id"])])
        flow = flows.get((row["account_id"], row["flow_id"]))
        step = next((s for s in flow.steps if s.id == row["step_id"]), None) if flow else None
        outcome, reason = "approved", None
        if d.decision == "reject":
            outcome, reason = "skipped", "Skipped: rejected in review"
        elif not isinstance(step, InternalAlertStep):
            outcome, reason = "skipped", "Skipped: flow or step no longer exists"
        else:
            run = Run(row["run_id"], flow, run_row["profile_id"], run_row["context"], run_row["trigger_type"])
            uow.publish(topics.ALERT_REQUESTS, run.profile_id, alert_request(run, step))
        await uow.conn.execute(
            "UPDATE step_executions SET outcome = $3, reason = $4, at = now()"
            " WHERE run_id = $1 AND step_id = $2",
            row["run_id"],
            row["step_id"],
            "executed" if outcome == "approved" else "skipped",
            reason,
        )
        uow.publish(
            topics.FLOW_ACTIVITY,
            run_row["profile_id"],
            FlowActivity(
                type="executed" if outcome == "approved" else "skipped",
                activity_id=f"{d.alert_id}:review",
                account_id=row["account_id"],
                flow_id=row["flow_id"],
                step_id=row["step_id"],
                run_id=str(row["run_id"]),
                profile_id=run_row["profile_id"],
                reason=reason,
            ),
        )
        results[d.alert_id] = "approved" if outcome == "approved" else "rejected"
    return results


async def on_review_decisions(uow: UnitOfWork, items: list[Received[ReviewDecision]]) -> None:
    await decide_reviews(uow, [i.message for i in items])


__all__ = ["Rejected"]
