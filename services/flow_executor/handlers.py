"""The flow executor's use cases: save definitions, enter profiles, fire delays, apply
review decisions, and keep the read model of profiles, consent and suppressions.

Every consumer use case is `async def <name>(batch, work)`: the batch as received and
a `ports.FlowWork`, the batch's unit of work and its only port (repositories by concern
and an outbox). It reads what the batch needs, asks the pure domain what follows
(`shared.domain.flow_rules`, `domain.entries`, `domain.planning`), writes it with one
repository call per kind of row, and publishes through the outbox what the new rows
prove new (F4). Payloads are built by `domain.messages`; no SQL, no adapters here. The
scheduler (`fire_due_timers`) and the review API (`decide_reviews`) call the same work.
Privacy requests are answered by the shared use case (`shared.privacy_requests`) over
the work's `privacy`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from services.flow_executor.domain import messages
from services.flow_executor.domain.entries import event_entries, first_of_each, list_entries
from services.flow_executor.domain.erasure import person_subjects, resubscribed_families
from services.flow_executor.domain.event_records import (
    EventInput,
    event_id_of,
    event_of,
    record_of,
    record_profiles,
)
from services.flow_executor.domain.planning import (
    Activity,
    RunEnd,
    RunPlan,
    Sent,
    Walk,
    activity,
    plan_walks,
    sent_by,
)
from services.flow_executor.domain.reachability import Grounds, blocked_reason, step_grounds
from services.flow_executor.domain.runs import UNKNOWN_PROFILE, ProfileKey, ProfileState, Run
from services.flow_executor.domain.smart_sending import channel_of, sending_channels
from services.flow_executor.domain.triggers import EntryIndex
from services.flow_executor.ports import (
    FlowDeletion,
    FlowWork,
    HeldReview,
    Resubscribed,
    SubjectQuery,
)
from shared.contracts import (
    ConsentChanged,
    FlowDefinition,
    ReviewDecision,
    SuppressionChanged,
    topics,
    utcnow,
)
from shared.contracts.flows import EmailStep, FlowDeleted, SmsStep
from shared.domain.flow_rules import flow_problems
from shared.received import Received
from shared.received import Trace as InputTrace

DEFINITIONS = "flow_executor.flow-definitions"
REJECTED = "Skipped: rejected in review"
FLOW_DELETED = "Exited: flow deleted"
SKIPPED_FLOW_DELETED = "Skipped: flow deleted"

Trace = Mapping[str, str]
"""The headers an input carries to what it causes: correlation id, trace context (X4)."""
Traces = Mapping[uuid.UUID, Trace | None]


def _publish_activity(
    work: FlowWork, activities: Sequence[Activity], traces: Traces | None = None
) -> None:
    """Each activity with the trace of its run, when known (X4)."""
    for a in activities:
        headers = traces.get(a.run_id) if traces else None
        work.publish(topics.FLOW_ACTIVITY, a.profile_id, messages.activity_message(a), headers)


def _traces_by(
    items: Sequence[Received[Any]], key: Callable[[Any], str], entries: Sequence[Run]
) -> dict[str, InputTrace]:
    """The trace of each input that starts one of `entries`, by the id its runs are
    entered under (the first copy of a repeated input, as `first_of_each` keeps the
    first run). Only those: a trace is made up for an input that carried none when it
    is first asked for, and most inputs start nothing."""
    wanted = {r.event_id for r in entries}
    traces: dict[str, InputTrace] = {}
    for item in items:
        if (k := key(item.message)) in wanted:
            traces.setdefault(k, item.trace)
    return traces


# --- F1: definitions -------------------------------------------------------------------


async def save_definitions(
    batch: list[Received[messages.DefinitionRecord]], work: FlowWork
) -> None:
    """F1: a valid higher version replaces the one in force; an invalid one is
    dead-lettered with the reasons and the previous version stays. A tombstone deletes
    the flow: no new entries, waiting runs exit and held reviews are cancelled."""
    for item in batch:
        msg = item.message.message
        if isinstance(msg, FlowDeleted):
            deletion = await work.flows.delete_flow(msg.account_id, msg.flow_id)
            _publish_activity(work, _deletion_activity(msg, deletion))
            continue
        errors = flow_problems(msg)
        if errors:
            await work.flows.reject_flow(msg, errors)
            work.dead_letter(DEFINITIONS, item.record, "invalid flow: " + "; ".join(errors))
            continue
        await work.flows.save_flow(msg)


def _deletion_activity(msg: FlowDeleted, deletion: FlowDeletion) -> list[Activity]:
    account, flow = msg.account_id, msg.flow_id
    exited = [
        Activity("exited", account, flow, r.run_id, r.profile_id, reason=FLOW_DELETED)
        for r in deletion.exited
    ]
    cancelled = [
        Activity("skipped", account, flow, r.run_id, r.profile_id, r.step_id, SKIPPED_FLOW_DELETED)
        for r in deletion.cancelled
    ]
    return exited + cancelled


# --- walking runs (F2-F6) --------------------------------------------------------------


async def _with_erasure(
    work: FlowWork,
    state: Mapping[ProfileKey, ProfileState],
    people: Sequence[tuple[ProfileKey, Mapping[str, Any] | None]],
) -> dict[ProfileKey, ProfileState]:
    """P2, I1: each profile's read model with the erase that its id, or the email or
    phone number it carries now (any spelling: hashed in their normal form), matches."""
    holds = await work.erasures.erasure_holds(
        [SubjectQuery(a, p, person_subjects(work.secret, p, person)) for (a, p), person in people]
    )
    out = dict(state)
    for key, hold in holds.items():
        out[key] = replace(out.get(key, UNKNOWN_PROFILE), erasure=hold)
    return out


async def _walk(work: FlowWork, walks: Sequence[Walk], *, entering: bool = False) -> None:
    """Advance each run and write the effects in one go: each request and activity goes
    out only if the row that proves it is new (F4). Batches that may message the same
    profile on a channel take turns from before the read of what was sent until they
    commit (F9: an event batch and the scheduler never both send).

    `entering`: the walks are of runs this batch enters, not stored yet. Each is inserted
    once its walk is planned, already ended if the walk ends it (one row written, not a
    row and then its update), and only the runs the insert finds new go on, after their
    `entered` activity (F2): a run entered before, by an earlier delivery of its event,
    does nothing again."""
    await work.sending.lock_sending(
        (w.run.account_id, w.run.profile_id, channel)
        for w in walks
        for channel in sending_channels(w.run.flow)
    )
    state = await work.profiles.walk_state((w.run.account_id, w.run.profile_id) for w in walks)
    state = await _with_erasure(
        work,
        state,
        [
            (key, state.get(key, UNKNOWN_PROFILE).profile or w.run.context.get("person"))
            for w in walks
            for key in [(w.run.account_id, w.run.profile_id)]
        ],
    )
    settings = await work.sending.sending_settings({w.run.account_id for w in walks})
    now = utcnow()
    plan: RunPlan = plan_walks(walks, state, now, settings)
    traces: Traces = {w.run.run_id: w.run.trace for w in walks}
    ends = plan.ends
    if entering:
        runs = [w.run for w in walks]
        new = await work.runs.insert_runs(runs, {e.run_id: e.status for e in plan.ends})
        entered = [activity(r, "entered", None, r.trigger_type) for r in runs if r.run_id in new]
        _publish_activity(work, entered, traces)
        plan, ends = plan.of_runs(new), ()
    new_steps = await work.runs.record_executions(plan.executions)
    new_timers = await work.runs.add_timers(plan.timers)
    await work.reviews.add_reviews([messages.held_review(h) for h in plan.holds_to_keep(new_steps)])
    await work.runs.finish_runs(ends)
    for d in plan.requests_to_send(new_steps):
        topic, request = messages.request(d.run, d.step, d.grounds)
        work.publish(topic, d.run.profile_id, request, d.run.trace)
    # F9: what went out is remembered in the same transaction as its outbox rows.
    await work.sending.note_sent(sent_by(plan, new_steps, now))
    _publish_activity(work, plan.activity_to_publish(new_steps, new_timers), traces)


async def _enter(work: FlowWork, entries: Sequence[Run], traces: Mapping[str, InputTrace]) -> None:
    """Enter the runs, each with the trace headers of the input that started it (`traces`
    by event id), and walk them from the first step; only the runs that are new are
    stored and walked (`_walk`, `entering`). A second copy of an event in the same batch
    is a duplicate: the first one enters (F2)."""
    runs = [
        replace(r, trace=t.headers() if (t := traces.get(r.event_id)) else None)
        for r in first_of_each(entries)
    ]
    if runs:
        await _walk(work, [Walk(r) for r in runs], entering=True)


async def enter_from_events(batch: list[Received[EventInput]], work: FlowWork) -> None:
    """F2: each event enters the metric flows it matches, once per event id; the newest
    profile data of accounts with flows is kept for later splits and filters (F3).

    Events are not claimed in the inbox: most enter no flow, and claiming each cost a
    row per event, a quarter of the batch's database time. Both effects are safe to
    repeat without it. An entry is a run whose id derives from the event id, inserted
    with `ON CONFLICT DO NOTHING`, and only a new run is walked, so a redelivered event
    never enters twice (and runs are kept longer than inbox ids). The profile merge only
    takes data at least as new as what is stored; a redelivered batch is replayed in its
    partition's order, so it ends in the same state.

    Events come as slim records (`domain.event_records`): what most of them need (is a
    flow listening? the profile row to keep) is read off the record, and a
    `ProfileEvent` is built only for an event a flow may take."""
    inputs = [i.message for i in batch]
    records = [record_of(m) for m in inputs]
    flows = await work.flows.live_flows(r["account_id"] for r in records)
    # F3: the entry filter sees the profile as stored before this batch, merged with
    # each event's own fields (domain.entries); read only for events a flow listens to:
    # of a metric one of the account's flows is triggered by, passing what of its filter
    # the event alone decides.
    index = EntryIndex(flows)
    candidates = [
        event_of(m)
        for m, r in zip(inputs, records, strict=True)
        if index.may_enter(r["account_id"], r["metric"], r["properties"], r["historical_import"])
    ]
    known = await work.profiles.walk_state((e.account_id, e.profile.id) for e in candidates)
    await work.profiles.upsert_profiles(record_profiles(records, flows, utcnow()))
    entries = event_entries(candidates, flows, known)
    if entries:
        await _enter(work, entries, _traces_by(batch, event_id_of, entries))


async def on_consent_changes(batch: list[Received[ConsentChanged]], work: FlowWork) -> None:
    """F7: keep the newest consent state per profile; F2: `Subscribed to List` enters
    list-triggered flows."""
    changes = [i.message for i in batch]
    await work.profiles.save_consent(messages.consent_states(changes))
    await work.profiles.save_receipts(messages.consent_receipts(changes))
    await _note_resubscribed(work, changes)
    flows = await work.flows.live_flows(c.account_id for c in changes)
    if not flows:
        return
    known = await work.profiles.walk_state(
        (c.account_id, c.profile_id) for c in changes if c.account_id in flows
    )
    await work.profiles.upsert_profiles(messages.change_profiles(changes, flows))
    entries = list_entries(changes, flows, known)
    if entries:
        await _enter(work, entries, _traces_by(batch, lambda c: c.change_id, entries))


async def _note_resubscribed(work: FlowWork, changes: Sequence[ConsentChanged]) -> None:
    """P2: a subscribe that arrives now for a profile an erase holds is remembered per
    channel family; it lifts the hold on that channel (see `domain.erasure`)."""
    subscribes = [
        (c, family)
        for c in changes
        for family in resubscribed_families(
            c.type, c.channel, c.state.model_dump(mode="json"), c.evidence
        )
    ]
    if not subscribes:
        return
    keys = [(c.account_id, c.profile_id) for c, _ in subscribes]
    stored = await work.profiles.walk_state(keys)
    people = [(k, stored[k].profile) for k in keys if k in stored] + [
        ((c.account_id, c.profile_id), c.profile.model_dump(mode="json")) for c, _ in subscribes
    ]
    held = await _with_erasure(work, {}, people)
    now = utcnow()
    await work.erasures.note_resubscribed(
        [
            Resubscribed(c.account_id, c.profile_id, family, now)
            for c, family in subscribes
            if (c.account_id, c.profile_id) in held
        ]
    )


async def on_suppression_changes(batch: list[Received[SuppressionChanged]], work: FlowWork) -> None:
    """F7: keep the suppressions in force per profile."""
    await work.profiles.save_suppressions(messages.suppression_lists([i.message for i in batch]))


async def fire_due_timers(work: FlowWork, limit: int, replica: str) -> int:
    """F3: resume every run whose delay is due. The row lock makes each fire once even
    with several replicas, and the mark commits with the walk's effects. A run resumes
    in the version in force now; a run of a deleted flow exits. What it publishes
    carries the trace of the input that started each run (X4)."""
    due = await work.runs.claim_due_timers(limit, replica)
    if not due:
        return 0
    flows = await work.flows.flows_by_key((t.account_id, t.flow_id) for t in due)
    walks: list[Walk] = []
    gone: list[RunEnd] = []
    exits: list[Activity] = []
    for t in due:
        flow: FlowDefinition | None = flows.get((t.account_id, t.flow_id))
        if flow is None:
            gone.append(RunEnd(t.run_id, "exited"))
            exits.append(
                Activity(
                    "exited", t.account_id, t.flow_id, t.run_id, t.profile_id, None, FLOW_DELETED
                )
            )
            continue
        run = Run(t.run_id, flow, t.profile_id, t.context, t.trigger_type, trace=t.trace)
        if t.kind == "quiet_hours":  # F8: the held message step is tried again
            walks.append(Walk(run, at_step=t.step_id))
        else:
            walks.append(Walk(run, after_delay=t.step_id))
    _publish_activity(work, exits, {t.run_id: t.trace for t in due})
    await work.runs.finish_runs(gone)
    if walks:
        await _walk(work, walks)
    return len(due)


# --- F5: reviews -----------------------------------------------------------------------


async def decide_reviews(work: FlowWork, decisions: Sequence[ReviewDecision]) -> dict[str, str]:
    """F5: approve sends the held action as it was held (an email or SMS is checked
    against reachability again, since it runs now, F6); reject records it as skipped.
    Both carry the trace of the input that started the held action's run (X4).
    Returns the new status per alert id; an unknown or decided alert is left alone."""
    results: dict[str, str] = {}
    for d in decisions:
        status = "approved" if d.decision == "approve" else "rejected"
        held = await work.reviews.decide_review(d.alert_id, status, d.by)
        if held is None:
            continue
        await _apply_decision(work, held, status)
        results[d.alert_id] = status
    return results


async def _apply_decision(work: FlowWork, held: HeldReview, status: str) -> None:
    step = messages.held_step(held)
    reason: str | None = REJECTED if status == "rejected" else None
    grounds: Grounds | None = None
    if reason is None and isinstance(step, EmailStep | SmsStep):
        state = await work.profiles.walk_state([(held.account_id, held.profile_id)])
        key = (held.account_id, held.profile_id)
        profile = state.get(key, UNKNOWN_PROFILE).profile or (held.request or {}).get("profile")
        known = (await _with_erasure(work, state, [(key, profile)])).get(key, UNKNOWN_PROFILE)
        reason = blocked_reason(
            step, known.consent, known.suppressions, profile or {}, known.erasure
        )
        grounds = step_grounds(
            step, known.consent, known.suppressions, known.receipts, known.erasure
        )
    if reason is None:
        topic, request = messages.held_request(held, step, grounds)
        work.publish(topic, held.profile_id, request, held.trace)
        if isinstance(step, EmailStep | SmsStep):  # F9 counts it
            channel = channel_of(step)
            await work.sending.note_sent(
                [Sent(held.account_id, held.profile_id, channel, utcnow())]
            )
    outcome = "executed" if reason is None else "skipped"
    await work.reviews.set_execution(held.run_id, held.step_id, outcome, reason)
    done = Activity(
        outcome,
        held.account_id,
        held.flow_id,
        held.run_id,
        held.profile_id,
        held.step_id,
        reason,
        grounds=grounds,
    )
    _publish_activity(work, [done], {held.run_id: held.trace})


async def on_review_decisions(batch: list[Received[ReviewDecision]], work: FlowWork) -> None:
    """F5 from `review-decisions` (the HTTP route does the same for one alert)."""
    await decide_reviews(work, [i.message for i in batch])
