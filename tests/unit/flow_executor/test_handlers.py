"""The flow executor's use cases over the in-memory repository (F1-F7): fast, no
PostgreSQL and no broker. The fake is held to the real repository's behaviour by
tests/component/flow_executor/test_repository_contract.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.flow_executor import handlers
from services.flow_executor.domain.messages import DefinitionRecord
from shared.contracts import (
    AlertRequested,
    ConsentChanged,
    FlowDefinition,
    MessageRequested,
    ReviewDecision,
    SuppressionChanged,
    topics,
    utcnow,
)
from shared.contracts.flows import FlowDeleted
from shared.received import Received, Trace
from tests.unit.flow_executor.fakes import FakeWork, InMemoryFlowRepository
from tests.unit.flow_executor.flows import alert, event, flow, list_change

TRACE = Trace("test")


def received(message: Any) -> Received[Any]:
    return Received(message, None, TRACE)  # type: ignore[arg-type]


def definition(message: FlowDefinition | FlowDeleted) -> Received[DefinitionRecord]:
    return received(DefinitionRecord(message, "0:0:x"))


async def saved(work: FakeWork, *flows: FlowDefinition) -> None:
    await handlers.save_definitions([definition(f) for f in flows], work)
    work.take()


def kinds(work: FakeWork) -> list[str]:
    return [a.type for a in work.on(topics.FLOW_ACTIVITY)]


def email_step(**extra: Any) -> dict[str, Any]:
    return {"id": "mail", "type": "email", "template_id": "t-1", **extra}


async def test_f1_an_invalid_version_is_dead_lettered_and_the_previous_stays() -> None:
    work = FakeWork()
    await saved(work, flow([alert()]))
    cycle = flow(
        [{"id": "wait", "type": "delay", "seconds": 60, "next": "alert"}, alert(nxt="wait")],
        version=2,
    )
    await handlers.save_definitions([definition(cycle)], work)
    [(consumer, _, error)] = work.dead_letters
    assert consumer == handlers.DEFINITIONS
    assert "makes a cycle" in error
    assert work.flows.rejections[("acme", "nps", 2)]
    assert work.flows.flows[("acme", "nps")].flow.version == 1


async def test_f1_a_lower_version_does_not_replace_a_higher_one() -> None:
    work = FakeWork()
    await saved(work, flow([alert()], version=3), flow([alert(subject="old")], version=2))
    assert work.flows.flows[("acme", "nps")].flow.version == 3


async def test_f2_a_matching_event_enters_once_and_the_alert_is_requested() -> None:
    work = FakeWork()
    await saved(work, flow([alert()]))
    await handlers.enter_from_events([received(event()), received(event())], work)
    [request] = work.on(topics.ALERT_REQUESTS)
    assert isinstance(request, AlertRequested)
    assert (request.profile_id, request.step_id, request.event) == ("p-1", "alert", {"score": 3})
    assert kinds(work) == ["entered", "executed", "exited"]
    work.take()
    await handlers.enter_from_events([received(event())], work)  # redelivered later
    assert work.published == []


async def test_f2_a_run_is_stored_as_its_first_walk_left_it_and_a_redelivery_does_nothing() -> None:
    """The walk of an entering run is planned before the run is stored, so that a run
    the walk ends is stored ended; a redelivered event's run is not new, and its walk,
    planned again under a flow changed since, does nothing (F2, F4)."""
    work = FakeWork()
    await saved(work, flow([alert()]))
    await handlers.enter_from_events([received(event())], work)
    [(run_id, status)] = work.flows.run_status.items()
    assert status == "completed"
    await saved(work, flow([email_step(next=None)], version=2))
    executions = dict(work.flows.executions)
    await handlers.enter_from_events([received(event())], work)  # the same event again
    assert work.published == []
    assert work.flows.executions == executions
    assert work.flows.run_status == {run_id: "completed"}


async def test_f2_historical_imports_and_unmatched_events_enter_nothing() -> None:
    work = FakeWork()
    await saved(work, flow([alert()]))
    await handlers.enter_from_events([received(event(historical=True))], work)
    await handlers.enter_from_events([received(event(score=9))], work)
    assert work.published == []
    assert work.flows.runs == {}


async def test_f2_subscribed_to_list_enters_list_flows() -> None:
    work = FakeWork()
    await saved(work, flow([alert()], trigger={"type": "list", "list_id": "vip"}))
    await handlers.on_consent_changes([received(list_change())], work)
    [request] = work.on(topics.ALERT_REQUESTS)
    assert request.trigger_type == "list"
    assert request.event == {}


async def test_f3_a_delay_waits_and_the_run_resumes_once_when_due() -> None:
    repo = InMemoryFlowRepository()
    work = FakeWork(repo)
    delayed = [{"id": "wait", "type": "delay", "seconds": 60, "next": "alert"}, alert()]
    await saved(work, flow(delayed))
    await handlers.enter_from_events([received(event())], work)
    assert kinds(work) == ["entered", "scheduled"]
    assert work.on(topics.ALERT_REQUESTS) == []
    work.take()
    assert await handlers.fire_due_timers(work, 10, "r1") == 0
    repo.now = lambda: utcnow() + timedelta(seconds=61)
    assert await handlers.fire_due_timers(work, 10, "r1") == 1
    assert len(work.on(topics.ALERT_REQUESTS)) == 1
    assert kinds(work) == ["executed", "executed", "exited"]  # delay passed, alert, end
    assert await handlers.fire_due_timers(work, 10, "r1") == 0


async def test_f3_a_split_follows_the_newest_profile_data_merged_with_the_event() -> None:
    work = FakeWork()
    split = {
        "id": "split",
        "type": "split",
        "condition": {"property": "person.tier", "op": "eq", "value": "gold"},
        "yes": "alert",
    }
    await saved(work, flow([split, alert()]))
    await handlers.enter_from_events([received(event(properties={"tier": "silver"}))], work)
    assert work.on(topics.ALERT_REQUESTS) == []
    gold = event(properties={"tier": "gold"}).model_copy(update={"event_id": "e-2"})
    await handlers.enter_from_events([received(gold)], work)
    assert len(work.on(topics.ALERT_REQUESTS)) == 1


async def test_f4_a_refired_walk_does_not_send_an_action_twice() -> None:
    repo = InMemoryFlowRepository()
    work = FakeWork(repo)
    await saved(
        work, flow([{"id": "wait", "type": "delay", "seconds": 1, "next": "alert"}, alert()])
    )
    await handlers.enter_from_events([received(event())], work)
    repo.now = lambda: utcnow() + timedelta(seconds=2)
    await handlers.fire_due_timers(work, 10, "r1")
    assert len(work.on(topics.ALERT_REQUESTS)) == 1
    for timer in repo.timers.values():  # as if the commit's mark were lost
        timer.fired_at = None
    work.take()
    await handlers.fire_due_timers(work, 10, "r1")
    assert work.on(topics.ALERT_REQUESTS) == []
    assert kinds(work) == ["executed", "exited"]  # delay passed and the exit only


async def test_f5_manual_review_holds_then_approve_sends_and_reject_skips() -> None:
    work = FakeWork()
    await saved(work, flow([alert(mode="manual")]))
    await handlers.enter_from_events([received(event())], work)
    [held] = [a for a in work.on(topics.FLOW_ACTIVITY) if a.type == "in_review"]
    assert work.on(topics.ALERT_REQUESTS) == []
    work.take()
    approve = ReviewDecision(alert_id=held.alert_id, decision="approve", by="lead")
    assert await handlers.decide_reviews(work, [approve]) == {held.alert_id: "approved"}
    [request] = work.on(topics.ALERT_REQUESTS)
    assert request.alert_id == held.alert_id
    assert await handlers.decide_reviews(work, [approve]) == {}  # decided already


async def test_f5_rejected_review_is_skipped_and_draft_does_nothing() -> None:
    work = FakeWork()
    await saved(work, flow([alert(mode="manual", nxt="draft"), alert("draft", mode="draft")]))
    await handlers.enter_from_events([received(event())], work)
    [held] = [a for a in work.on(topics.FLOW_ACTIVITY) if a.type == "in_review"]
    skipped = [a.reason for a in work.on(topics.FLOW_ACTIVITY) if a.type == "skipped"]
    assert skipped == ["Skipped: draft"]
    work.take()
    reject = ReviewDecision(alert_id=held.alert_id, decision="reject", by="lead")
    await handlers.on_review_decisions([received(reject)], work)
    assert work.on(topics.ALERT_REQUESTS) == []
    [done] = work.on(topics.FLOW_ACTIVITY)
    assert (done.type, done.reason) == ("skipped", handlers.REJECTED)


async def test_f6_an_email_to_a_suppressed_profile_is_skipped_with_the_reason() -> None:
    work = FakeWork()
    await saved(work, flow([email_step()]))
    suppressed = SuppressionChanged.model_validate(
        {
            "change_id": "s-1",
            "account_id": "acme",
            "profile_id": "p-1",
            "profile": {"id": "p-1", "email": "ada@example.com"},
            "type": "suppressed",
            "reason": "hard_bounce",
            "suppressions": [{"channel": "email", "reason": "hard_bounce"}],
            "occurred_at": "2026-11-23T09:00:00Z",
        }
    )
    await handlers.on_suppression_changes([received(suppressed)], work)
    await handlers.enter_from_events([received(event())], work)
    assert work.on(topics.MESSAGE_REQUESTS) == []
    [skip] = [a for a in work.on(topics.FLOW_ACTIVITY) if a.type == "skipped"]
    assert skip.reason.startswith("Skipped:")


async def test_f6_f7_an_email_goes_out_by_the_executors_own_read_model() -> None:
    work = FakeWork()
    await saved(work, flow([email_step()]))
    await handlers.enter_from_events([received(event())], work)
    [request] = work.on(topics.MESSAGE_REQUESTS)
    assert isinstance(request, MessageRequested)
    assert (request.channel, request.template_id) == ("email", "t-1")


async def test_f7_an_older_consent_change_does_not_replace_a_newer_one() -> None:
    work = FakeWork()

    def change(change_id: str, at: str, status: str) -> ConsentChanged:
        return list_change(
            type_="Unsubscribed" if status == "unsubscribed" else "Subscribed",
            change_id=change_id,
            consented_at=at,
            occurred_at=at,
            state={"email": {"status": status}},
        )

    newer = change("c-2", "2026-11-23T11:00:00Z", "unsubscribed")
    older = change("c-1", "2026-11-23T10:00:00Z", "subscribed")
    await handlers.on_consent_changes([received(newer)], work)
    await handlers.on_consent_changes([received(older)], work)
    state = await work.flows.walk_state([("acme", "p-1")])
    assert state[("acme", "p-1")].consent["email"]["status"] == "unsubscribed"


async def test_f1_deleting_a_flow_exits_waiting_runs_and_cancels_held_reviews() -> None:
    repo = InMemoryFlowRepository()
    work = FakeWork(repo)
    await saved(
        work,
        flow([{"id": "wait", "type": "delay", "seconds": 60, "next": "alert"}, alert()]),
        flow([alert(mode="manual")], flow_id="held"),
    )
    await handlers.enter_from_events([received(event())], work)
    work.take()
    await handlers.save_definitions(
        [
            definition(FlowDeleted(account_id="acme", flow_id="nps")),
            definition(FlowDeleted(account_id="acme", flow_id="held")),
        ],
        work,
    )
    # The waiting run exits; the held run had completed, only its review is cancelled.
    assert [(a.type, a.flow_id, a.reason) for a in work.on(topics.FLOW_ACTIVITY)] == [
        ("exited", "nps", handlers.FLOW_DELETED),
        ("skipped", "held", handlers.SKIPPED_FLOW_DELETED),
    ]
    repo.now = lambda: utcnow() + timedelta(seconds=61)
    assert await handlers.fire_due_timers(work, 10, "r1") == 0
    assert await repo.live_flows(["acme"]) == {}


def headers_on(work: FakeWork, topic: str) -> list[Any]:
    return [h for t, _, h in work.headers if t == topic]


async def test_x4_a_delayed_step_carries_the_trace_of_the_event_that_started_its_run() -> None:
    repo = InMemoryFlowRepository()
    work = FakeWork(repo)
    delayed = [{"id": "wait", "type": "delay", "seconds": 60, "next": "alert"}, alert()]
    await saved(work, flow(delayed))
    ada = event().model_copy(update={"event_id": "e-ada"})
    bob = event().model_copy(update={"event_id": "e-bob"})
    traced = Trace("corr-ada", "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "k=v")
    await handlers.enter_from_events(
        [Received(ada, None, traced), Received(bob, None, Trace("corr-bob"))],  # type: ignore[arg-type]
        work,
    )
    # Two events of one profile in one batch: each run keeps its own event's trace.
    assert {h["correlation_id"] for h in headers_on(work, topics.FLOW_ACTIVITY)} == {
        "corr-ada",
        "corr-bob",
    }
    work.take()
    repo.now = lambda: utcnow() + timedelta(seconds=61)
    assert await handlers.fire_due_timers(work, 10, "r1") == 2
    by_alert = {
        m.alert_id.split(":")[0]: h for t, m, h in work.headers if t == topics.ALERT_REQUESTS
    }
    runs = {r.event_id: str(r.run_id) for r in repo.runs.values()}
    assert by_alert[runs["e-ada"]] == traced.headers()
    assert by_alert[runs["e-bob"]] == {"correlation_id": "corr-bob"}
    activity = {
        (m.run_id, h["correlation_id"]) for t, m, h in work.headers if t == topics.FLOW_ACTIVITY
    }
    assert activity == {(runs["e-ada"], "corr-ada"), (runs["e-bob"], "corr-bob")}


async def test_x4_an_approved_review_carries_the_trace_of_the_event_that_was_held() -> None:
    work = FakeWork()
    await saved(work, flow([alert(mode="manual")]))
    await handlers.enter_from_events([Received(event(), None, Trace("corr-held"))], work)  # type: ignore[arg-type]
    [held] = [a for a in work.on(topics.FLOW_ACTIVITY) if a.type == "in_review"]
    work.take()
    approve = ReviewDecision(alert_id=held.alert_id, decision="approve", by="lead")
    await handlers.decide_reviews(work, [approve])
    assert headers_on(work, topics.ALERT_REQUESTS) == [{"correlation_id": "corr-held"}]
    assert headers_on(work, topics.FLOW_ACTIVITY)[-1:] == [{"correlation_id": "corr-held"}]
