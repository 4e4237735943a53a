"""C17 in the flow executor: every `message-requests` record and every email or SMS
step's `flow-activity` after its consent check names the consent receipt in force and
the suppressions its decision rested on, from the executor's own read model (F7). Run
through the use cases over the in-memory repository."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.flow_executor import handlers
from services.flow_executor.domain.messages import DefinitionRecord
from services.flow_executor.domain.reachability import change_slots, deciding_slot
from shared.contracts import (
    ConsentChanged,
    FlowActivity,
    FlowDefinition,
    MessageRequested,
    ReviewDecision,
    SuppressionChanged,
    topics,
)
from shared.received import Received, Trace
from tests.unit.flow_executor.fakes import FakeWork
from tests.unit.flow_executor.flows import event, flow

PHONE = "+15555550100"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def received(message: Any) -> Received[Any]:
    return Received(message, None, Trace("test"))  # type: ignore[arg-type]


def change(
    type_: str,
    receipt_id: str | None,
    channel: str = "email",
    at: datetime = T0,
    **fields: Any,
) -> ConsentChanged:
    state = fields.pop("state", {})
    return ConsentChanged.model_validate(
        {
            "type": type_,
            "change_id": f"c-{type_}-{receipt_id}-{at.isoformat()}",
            "account_id": "acme",
            "profile_id": "p-1",
            "profile": {"id": "p-1", "email": "ada@example.com", "phone_number": PHONE},
            "channel": channel,
            "consented_at": at,
            "occurred_at": at,
            "state": state,
            "receipt_id": receipt_id,
            **fields,
        }
    )


SUBSCRIBED = change(
    "Subscribed to Email Marketing", "r-email", state={"email": {"status": "subscribed"}}
)


def suppressed(*entries: dict[str, Any]) -> SuppressionChanged:
    return SuppressionChanged.model_validate(
        {
            "type": "suppressed",
            "change_id": "s-1",
            "account_id": "acme",
            "profile_id": "p-1",
            "profile": {"id": "p-1"},
            "reason": entries[0]["reason"],
            "suppressions": list(entries),
            "occurred_at": T0 + timedelta(hours=1),
        }
    )


def mail(**extra: Any) -> dict[str, Any]:
    return {"id": "mail", "type": "email", "template_id": "t-1", "next": None, **extra}


def text(**extra: Any) -> dict[str, Any]:
    return {"id": "text", "type": "sms", "body": "Hi", "next": None, **extra}


async def ready(*flows: FlowDefinition, changes: list[ConsentChanged] | None = None) -> FakeWork:
    work = FakeWork()
    await handlers.save_definitions([received(DefinitionRecord(f, "0:0:x")) for f in flows], work)
    for c in changes or []:
        await handlers.on_consent_changes([received(c)], work)
    work.take()
    return work


async def run_event(work: FakeWork, **profile: Any) -> None:
    await handlers.enter_from_events([received(event(phone_number=PHONE, **profile))], work)


def requests(work: FakeWork) -> list[MessageRequested]:
    return [m for m in work.on(topics.MESSAGE_REQUESTS) if isinstance(m, MessageRequested)]


def step_activity(work: FakeWork, kind: str) -> list[FlowActivity]:
    return [
        a
        for a in work.on(topics.FLOW_ACTIVITY)
        if isinstance(a, FlowActivity) and a.type == kind and a.step_id is not None
    ]


# --- the rule: which consent a change is about and which one decides a message ----------


def test_c17_a_change_names_the_consent_slot_its_receipt_is_for() -> None:
    assert change_slots("Subscribed to Email Marketing", "email", "news", None, {}) == ("email",)
    assert change_slots("Unsubscribed from Email Marketing", "email", None, "group", {}) == (
        "email",
    )
    assert change_slots("Unsubscribed from Email Marketing", "email", None, "client:ev", {}) == (
        "scope:client:ev",
    )
    assert change_slots("Subscribed to List", "email", "news", None, {}) == ("list:news",)
    assert change_slots("Subscribed to SMS Transactional", "sms", None, None, {}) == (
        "sms_transactional",
    )
    stopped = {"sms_marketing": {"status": "unsubscribed"}}
    assert change_slots("Unsubscribed from SMS", "sms", None, None, stopped) == ("sms_marketing",)
    both = ("sms_marketing", "sms_transactional")
    assert change_slots("Changed SMS Phone Number", "sms", None, None, {}) == both
    assert change_slots("Subscribed to Mobile Push", "push", None, None, {}) == ("push",)


def test_c17_the_deciding_consent_is_the_scope_or_list_that_blocks_else_the_channel() -> None:
    opted = {"email": {"status": "subscribed"}, "opt_outs": ["user:ev/bob"]}
    assert deciding_slot(opted, "email", None, "ev", "bob") == "scope:user:ev/bob"
    assert deciding_slot(opted, "email", None, "ev", "ann") == "email"
    unlisted = {"email": {"status": "subscribed"}, "lists": {"news": "unsubscribed"}}
    assert deciding_slot(unlisted, "email", "news") == "list:news"
    assert deciding_slot({**unlisted, "opt_outs": ["group"]}, "email", "news") == "email"
    marketing = {"sms_marketing": {"status": "subscribed"}}
    assert deciding_slot(marketing, "sms_transactional") == "sms_marketing"  # C5
    assert deciding_slot({}, "sms_transactional") == "sms_transactional"


# --- through the use cases ------------------------------------------------------------


async def test_c17_a_sent_email_names_the_receipt_in_force() -> None:
    work = await ready(flow([mail()]), changes=[SUBSCRIBED])
    await run_event(work)
    [request] = requests(work)
    assert (request.receipt_id, request.suppressions) == ("r-email", [])
    [executed] = step_activity(work, "executed")
    assert (executed.step_id, executed.receipt_id) == ("mail", "r-email")


async def test_c17_a_step_blocked_by_an_opt_out_names_that_opt_outs_receipt() -> None:
    opt_out = change(
        "Unsubscribed from Email Marketing",
        "r-opt-out",
        at=T0 + timedelta(hours=1),
        scope="client:events",
        state={"email": {"status": "subscribed"}, "opt_outs": ["client:events"]},
    )
    work = await ready(
        flow([mail(client_id="events", next="other"), mail(id="other", client_id="shop")]),
        changes=[SUBSCRIBED, opt_out],
    )
    await run_event(work)
    [skipped] = step_activity(work, "skipped")
    assert (skipped.step_id, skipped.reason) == ("mail", "Skipped: opted out (client:events)")
    assert (skipped.receipt_id, skipped.suppressions) == ("r-opt-out", [])
    [request] = requests(work)  # another client's mail still goes, on the email consent
    assert (request.step_id, request.receipt_id) == ("other", "r-email")


async def test_c17_an_unsubscribe_names_its_receipt() -> None:
    unsub = change(
        "Unsubscribed from Email Marketing",
        "r-unsub",
        at=T0 + timedelta(hours=1),
        scope="group",
        state={"email": {"status": "unsubscribed"}},
    )
    work = await ready(flow([mail()]), changes=[SUBSCRIBED, unsub])
    await run_event(work)
    [skipped] = step_activity(work, "skipped")
    assert (skipped.reason, skipped.receipt_id) == ("Skipped: unsubscribed from email", "r-unsub")


async def test_c17_a_step_blocked_by_a_suppression_names_the_suppression() -> None:
    work = await ready(flow([mail(list_id="news")]), changes=[SUBSCRIBED])
    since = (T0 + timedelta(hours=1)).isoformat()
    bounce = {"channel": "email", "reason": "hard_bounce", "list_id": None, "since": since}
    other_list = {"channel": "email", "reason": "manual", "list_id": "promo", "since": since}
    sms = {"channel": "sms", "reason": "manual", "list_id": None, "since": since}
    await handlers.on_suppression_changes([received(suppressed(bounce, other_list, sms))], work)
    await run_event(work)
    assert requests(work) == []
    [skipped] = step_activity(work, "skipped")
    assert skipped.reason == "Skipped: suppressed (hard_bounce)"
    assert skipped.suppressions == [bounce]  # only those that count for this email
    assert skipped.receipt_id == "r-email"  # the consent it passed


async def test_c17_sms_names_the_purposes_receipt_and_none_after_the_number_changed() -> None:
    subscribed = change(
        "Subscribed to SMS Marketing",
        "r-sms",
        channel="sms",
        state={"sms_marketing": {"status": "subscribed", "phone_number": PHONE}},
    )
    work = await ready(flow([text(purpose="transactional")], flow_id="codes"), changes=[subscribed])
    await run_event(work)
    [request] = requests(work)
    assert (request.channel, request.receipt_id) == ("sms", "r-sms")  # C5: marketing covers it

    moved = change("Changed SMS Phone Number", None, channel="sms", at=T0 + timedelta(hours=1))
    await handlers.on_consent_changes([received(moved)], work)
    work.take()
    await handlers.enter_from_events(
        [received(event(phone_number=PHONE).model_copy(update={"event_id": "e-2"}))], work
    )
    [skipped] = step_activity(work, "skipped")
    assert skipped.reason == "Skipped: not subscribed to SMS transactional"
    assert skipped.receipt_id is None


async def test_c17_a_late_older_change_does_not_replace_a_slots_receipt() -> None:
    newer = change(
        "Unsubscribed from Email Marketing",
        "r-new",
        at=T0 + timedelta(hours=2),
        scope="group",
        state={"email": {"status": "unsubscribed"}},
    )
    listed = change("Subscribed to List", "r-list", at=T0 + timedelta(hours=3), list_id="news")
    work = await ready(flow([mail()]), changes=[newer, SUBSCRIBED, listed])
    receipts = dict((await work.flows.walk_state([("acme", "p-1")]))[("acme", "p-1")].receipts)
    assert receipts == {"email": "r-new", "list:news": "r-list"}


async def test_c17_smart_sending_and_an_approved_review_name_the_receipt() -> None:
    first = flow([mail()], flow_id="welcome")
    second = flow([mail()], flow_id="nps")
    held = flow([mail(mode="manual", smart_sending_hours=0)], flow_id="held")
    work = await ready(first, second, held, changes=[SUBSCRIBED])
    await run_event(work)
    [skipped] = step_activity(work, "skipped")
    assert (skipped.reason, skipped.receipt_id) == ("Skipped: smart sending", "r-email")
    [in_review] = step_activity(work, "in_review")
    resubscribed = change(
        "Subscribed to Email Marketing",
        "r-again",
        at=T0 + timedelta(hours=1),
        state={"email": {"status": "subscribed"}},
    )
    await handlers.on_consent_changes([received(resubscribed)], work)
    work.take()
    approve = ReviewDecision(alert_id=in_review.alert_id or "", decision="approve", by="lead")
    await handlers.decide_reviews(work, [approve])
    [request] = requests(work)
    assert (request.flow_id, request.receipt_id) == ("held", "r-again")  # checked then
    [executed] = step_activity(work, "executed")
    assert executed.receipt_id == "r-again"


async def test_c17_a_draft_rests_on_no_receipt() -> None:
    work = await ready(flow([mail(mode="draft")]), changes=[SUBSCRIBED])
    await run_event(work)
    [skipped] = step_activity(work, "skipped")
    assert (skipped.reason, skipped.receipt_id, skipped.suppressions) == (
        "Skipped: draft",
        None,
        [],
    )
