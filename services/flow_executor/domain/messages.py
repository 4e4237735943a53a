"""Contract <-> domain for the flow executor: the requests an action sends
(`alert-requests`, `message-requests`), `flow-activity` entries, the read-model facts a
batch of inputs carries, and the `flow-definitions` record as the use case receives it.

The rest of the domain plans in its own terms (`Dispatch`, `Hold`, `Activity`); only
this module knows which payload and topic each becomes. Pure: the edge parses records
(`adapters.definitions`), the use cases publish what this module builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from services.flow_executor.domain.event_time import effective_time
from services.flow_executor.domain.planning import Activity, Hold
from services.flow_executor.domain.reachability import Grounds, change_slots
from services.flow_executor.domain.records import HeldReview, Observed
from services.flow_executor.domain.runs import Run, action_id
from services.flow_executor.domain.walker import ActionStep
from shared.contracts import (
    AlertContent,
    AlertRequested,
    ConsentChanged,
    FlowActivity,
    FlowDefinition,
    MessageRequested,
    Profile,
    ProfileEvent,
    SuppressionChanged,
    topics,
)
from shared.contracts.flows import (
    EmailStep,
    FlowDeleted,
    InternalAlertStep,
    SmsStep,
    Step,
)
from shared.domain.identity import derived_id

_step = TypeAdapter(Step)

ActionRequest = AlertRequested | MessageRequested


@dataclass(frozen=True)
class DefinitionRecord:
    """A parsed `flow-definitions` record and the id that dedupes its redelivery: the
    record's position plus a digest of its bytes (a re-published identical definition
    sits at another offset and is processed again)."""

    message: FlowDefinition | FlowDeleted
    message_id: str


# --- the requests an action sends (F4, F5) ---------------------------------------------


def alert_request(run: Run, step: InternalAlertStep) -> AlertRequested:
    """The `alert-requests` payload of an internal alert action in `run`."""
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


def message_request(
    run: Run, step: EmailStep | SmsStep, grounds: Grounds | None = None
) -> MessageRequested:
    """The `message-requests` payload of an email or SMS action in `run`, with the
    receipt and suppressions its decision rested on (C17)."""
    email = isinstance(step, EmailStep)
    grounds = grounds or Grounds()
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
        receipt_id=grounds.receipt_id,
        suppressions=grounds.suppression_list(),
    )


def request(
    run: Run, step: ActionStep, grounds: Grounds | None = None
) -> tuple[str, ActionRequest]:
    """(topic, payload) of the action `step` in `run` (`grounds`: C17, email and SMS)."""
    if isinstance(step, InternalAlertStep):
        return topics.ALERT_REQUESTS, alert_request(run, step)
    return topics.MESSAGE_REQUESTS, message_request(run, step, grounds)


def held_review(hold: Hold) -> HeldReview:
    """A hold as stored: the step and its request as they are now, in wire JSON."""
    run, step = hold.run, hold.step
    return HeldReview(
        alert_id=action_id(run.run_id, step.id),
        run_id=run.run_id,
        step_id=step.id,
        account_id=run.account_id,
        flow_id=run.flow_id,
        profile_id=run.profile_id,
        step=step.model_dump(mode="json"),
        request=request(run, step, hold.grounds)[1].model_dump(mode="json"),
    )


def held_step(review: HeldReview) -> ActionStep | None:
    """The step a review held (None once erased, P2)."""
    return _step.validate_python(review.step) if review.step else None  # type: ignore[return-value]


def held_request(
    review: HeldReview, step: ActionStep | None, grounds: Grounds | None = None
) -> tuple[str, ActionRequest]:
    """(topic, payload) of the request a review held, as it was held; a message names
    the receipt and suppressions of the check made when it was approved (C17)."""
    held = review.request or {}
    if isinstance(step, InternalAlertStep):
        return topics.ALERT_REQUESTS, AlertRequested.model_validate(held)
    message = MessageRequested.model_validate(held)
    if grounds is not None:
        message = message.model_copy(
            update={
                "receipt_id": grounds.receipt_id,
                "suppressions": grounds.suppression_list(),
            }
        )
    return topics.MESSAGE_REQUESTS, message


# --- flow-activity ----------------------------------------------------------------------


def activity_id(a: Activity, run_id: str | None = None) -> str:
    """One id per run, step and kind, unique by construction (X2): the step id is
    escaped, and an activity without a step has one part fewer. A `scheduled` activity
    also names its due time (UTC, ISO 8601): a step held by quiet hours again at its
    release (F8) is scheduled anew, and consumers that dedupe by id must see it.
    `run_id`: `str(a.run_id)` when the caller has it (a UUID's text is made in Python)."""
    run = run_id if run_id is not None else str(a.run_id)
    if a.step_id is None:
        return derived_id(run, a.kind)
    if a.kind == "scheduled" and a.due_at is not None:
        due = a.due_at.astimezone(UTC).isoformat()
        return derived_id(run, a.step_id, a.kind, due)
    return derived_id(run, a.step_id, a.kind)


def activity_message(a: Activity) -> FlowActivity:
    """The `flow-activity` payload of one planned activity."""
    run_id = str(a.run_id)
    grounds = a.grounds
    return FlowActivity(
        type=a.kind,  # type: ignore[arg-type]
        activity_id=activity_id(a, run_id),
        account_id=a.account_id,
        flow_id=a.flow_id,
        step_id=a.step_id,
        run_id=run_id,
        profile_id=a.profile_id,
        reason=a.reason,
        due_at=a.due_at,
        alert_id=a.alert_id,
        receipt_id=grounds.receipt_id if grounds else None,
        suppressions=grounds.suppression_list() if grounds else [],
    )


# --- read-model facts (F3, F7) ---------------------------------------------------------


def event_profiles(
    events: Sequence[ProfileEvent], accounts: Any, arrived: datetime
) -> list[Observed]:
    """The profile data events of `accounts` carry, as of each event's time; a time
    later than the batch's arrival (beyond the allowed skew) counts as the arrival (F2),
    so a future-dated event never pins the profile against newer ones."""
    return [
        Observed(
            e.account_id, e.profile.id, e.profile.model_dump_json(), effective_time(e.time, arrived)
        )
        for e in events
        if e.account_id in accounts
    ]


def change_profiles(changes: Sequence[ConsentChanged], accounts: Any) -> list[Observed]:
    """The profile data consent changes of `accounts` carry."""
    return [
        Observed(c.account_id, c.profile_id, c.profile.model_dump_json(), c.occurred_at)
        for c in changes
        if c.account_id in accounts
    ]


def consent_states(changes: Sequence[ConsentChanged]) -> list[Observed]:
    """The consent state after each change (F7)."""
    return [
        Observed(c.account_id, c.profile_id, c.state.model_dump(mode="json"), c.occurred_at)
        for c in changes
    ]


def consent_receipts(changes: Sequence[ConsentChanged]) -> list[Observed]:
    """The receipt each change carries, for the consent slots it is about (C17):
    `{slot: receipt_id}` as of the change's `occurred_at`, the consent state's clock."""
    return [
        Observed(
            c.account_id,
            c.profile_id,
            dict.fromkeys(
                change_slots(
                    c.type, c.channel, c.list_id, c.scope, c.state.model_dump(mode="json")
                ),
                c.receipt_id,
            ),
            c.occurred_at,
        )
        for c in changes
    ]


def suppression_lists(changes: Sequence[SuppressionChanged]) -> list[Observed]:
    """The suppressions in force after each change (F7)."""
    return [Observed(c.account_id, c.profile_id, c.suppressions, c.occurred_at) for c in changes]
