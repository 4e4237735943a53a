"""F8 and F9 through the executor's use cases over the in-memory repository, with the
clock fixed: a marketing SMS outside the window waits on a timer (as a delay does) and
runs once when the window opens, consent checked again then; smart sending skips a
second flow's message on the channel and the run goes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.flow_executor import handlers
from services.flow_executor.domain.messages import DefinitionRecord
from services.flow_executor.domain.sending_window import SendingSettings
from shared.contracts import ConsentChanged, FlowDefinition, MessageRequested, topics
from shared.domain.identity import derived_id
from shared.received import Received, Trace
from tests.unit.flow_executor.fakes import FakeWork
from tests.unit.flow_executor.flows import alert, event, flow

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 22:00 the day before in New York
NYC = "+12125550100"
OPENS = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 08:00 in New York


def received(message: Any) -> Received[Any]:
    return Received(message, None, Trace("test"))  # type: ignore[arg-type]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The executor's clock, fixed at NOW; set `clock[0]` to move it."""
    now = [NOW]
    monkeypatch.setattr(handlers, "utcnow", lambda: now[0])
    return now


async def ready(clock: list[datetime], *flows: FlowDefinition) -> FakeWork:
    """The default window (08:00–21:00) and SMS consent of p-1 for NYC."""
    work = FakeWork()
    work.flows.now = lambda: clock[0]
    del work.flows.settings["acme"]
    records = [received(DefinitionRecord(f, "0:0:x")) for f in flows]
    await handlers.save_definitions(records, work)
    sms = {"sms_marketing": {"status": "subscribed", "phone_number": NYC}}
    await handlers.on_consent_changes(
        [received(sms_change("Subscribed to SMS Marketing", sms))], work
    )
    work.take()
    return work


def sms_change(type_: str, state: dict[str, Any]) -> ConsentChanged:
    return ConsentChanged.model_validate(
        {
            "type": type_,
            "change_id": f"c-{type_}",
            "account_id": "acme",
            "profile_id": "p-1",
            "profile": {"id": "p-1", "phone_number": NYC},
            "channel": "sms",
            "consented_at": "2026-11-01T00:00:00Z",
            "occurred_at": "2026-11-01T00:00:00Z",
            "state": state,
        }
    )


def text(step_id: str = "text", nxt: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "sms", "body": "Hi", "next": nxt, **extra}


def requests(work: FakeWork) -> list[MessageRequested]:
    return [m for m in work.on(topics.MESSAGE_REQUESTS) if isinstance(m, MessageRequested)]


async def test_f8_a_marketing_sms_at_night_waits_for_the_window_and_runs_once(
    clock: list[datetime],
) -> None:
    work = await ready(clock, flow([text()]))
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    assert requests(work) == []
    [waiting] = [a for a in work.on(topics.FLOW_ACTIVITY) if a.type == "scheduled"]
    assert (waiting.step_id, waiting.reason, waiting.due_at) == (
        "text",
        "Waiting: quiet hours",
        OPENS,
    )
    [timer] = work.flows.timers.values()
    assert (timer.kind, timer.due_at) == ("quiet_hours", OPENS)

    clock[0] = OPENS - timedelta(seconds=1)
    assert await handlers.fire_due_timers(work, 10, "r1") == 0
    clock[0] = OPENS
    assert await handlers.fire_due_timers(work, 10, "r1") == 1
    [request] = requests(work)
    assert (request.step_id, request.channel) == ("text", "sms")
    assert await handlers.fire_due_timers(work, 10, "r1") == 0  # fired once (F3, F4)
    assert len(requests(work)) == 1
    kinds = [a.type for a in work.on(topics.FLOW_ACTIVITY)]
    assert kinds == ["entered", "scheduled", "executed", "exited"]  # no "delay passed"


async def test_f6_f8_consent_is_checked_again_when_the_window_opens(
    clock: list[datetime],
) -> None:
    work = await ready(clock, flow([text()]))
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    stop = sms_change("Unsubscribed from SMS", {"sms_marketing": {"status": "unsubscribed"}})
    await handlers.on_consent_changes([received(stop)], work)
    clock[0] = OPENS
    await handlers.fire_due_timers(work, 10, "r1")
    assert requests(work) == []
    [skip] = [a for a in work.on(topics.FLOW_ACTIVITY) if a.type == "skipped"]
    assert skip.reason == "Skipped: not subscribed to SMS marketing"


async def test_f8_a_step_held_again_at_its_release_waits_on_the_same_timer(
    clock: list[datetime],
) -> None:
    """The account narrows its window while the profile waits: at the release the step
    is outside the new window, and waits again (the fired timer is armed again)."""
    work = await ready(clock, flow([text()]))
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    work.flows.settings["acme"] = SendingSettings(10 * 60, 21 * 60)
    clock[0] = OPENS
    assert await handlers.fire_due_timers(work, 10, "r1") == 1
    assert requests(work) == []
    [timer] = work.flows.timers.values()
    assert (timer.due_at, timer.fired_at) == (OPENS + timedelta(hours=2), None)
    clock[0] = OPENS + timedelta(hours=2)
    assert await handlers.fire_due_timers(work, 10, "r1") == 1
    assert len(requests(work)) == 1


async def test_f8_x2_a_step_held_again_is_scheduled_under_a_new_activity_id(
    clock: list[datetime],
) -> None:
    """Consumers dedupe `flow-activity` by id: the second hold's `scheduled`, with its
    new release time, must not share the first one's id."""
    work = await ready(clock, flow([text()]))
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    work.flows.settings["acme"] = SendingSettings(10 * 60, 21 * 60)
    clock[0] = OPENS
    await handlers.fire_due_timers(work, 10, "r1")
    first, again = [a for a in work.on(topics.FLOW_ACTIVITY) if a.type == "scheduled"]
    assert (first.due_at, again.due_at) == (OPENS, OPENS + timedelta(hours=2))
    assert first.activity_id != again.activity_id
    assert first.activity_id == derived_id(first.run_id, "text", "scheduled", OPENS.isoformat())


async def test_f9_a_walk_locks_each_profile_and_channel_it_may_message_first(
    clock: list[datetime],
) -> None:
    """Two batches (the scheduler and an event consumer) must not both read "nothing
    sent" for one profile: a walk takes a lock per (account, profile, channel) of the
    flow's message steps before it reads what was sent."""
    clock[0] = OPENS
    mail = {"id": "mail", "type": "email", "template_id": "t-1", "next": "text"}
    work = await ready(clock, flow([mail, text()]), flow([alert()], flow_id="alerts"))
    work.flows.locked.clear()
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    assert work.flows.locked == [[("acme", "p-1", "email"), ("acme", "p-1", "sms")]]


async def test_f8_transactional_sms_is_exempt(clock: list[datetime]) -> None:
    work = await ready(clock, flow([text(purpose="transactional")]))
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    assert len(requests(work)) == 1


async def test_f8_email_keeps_quiet_hours_only_when_the_account_turns_it_on(
    clock: list[datetime],
) -> None:
    mail = {"id": "mail", "type": "email", "template_id": "t-1", "next": None}
    work = await ready(clock, flow([mail]))
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    assert len(requests(work)) == 1
    work.flows.settings["acme"] = SendingSettings(email_quiet_hours=True)
    work.flows.sent.clear()
    second = event(phone_number=NYC).model_copy(update={"event_id": "e-2"})
    await handlers.enter_from_events([received(second)], work)
    assert len(requests(work)) == 1
    assert [t.kind for t in work.flows.timers.values()] == ["quiet_hours"]


async def test_f9_a_second_flows_sms_within_the_hours_is_skipped_and_the_run_goes_on(
    clock: list[datetime],
) -> None:
    clock[0] = OPENS
    first = flow([text()], flow_id="welcome")
    second = flow([text("text", "alert"), alert()], flow_id="nps")
    work = await ready(clock, first, second)
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    [request] = requests(work)  # both flows entered in one batch; one message
    assert request.flow_id == "welcome"
    skipped = [a for a in work.on(topics.FLOW_ACTIVITY) if a.type == "skipped"]
    assert [(a.reason, a.flow_id) for a in skipped] == [("Skipped: smart sending", "nps")]
    assert len(work.on(topics.ALERT_REQUESTS)) == 1  # the run went on past the skip
    assert work.flows.sent[("acme", "p-1", "sms")] == OPENS

    clock[0] = OPENS + timedelta(days=1)  # a day later: no longer within 16 hours
    later = event(phone_number=NYC).model_copy(update={"event_id": "e-2"})
    await handlers.enter_from_events([received(later)], work)
    assert len(requests(work)) == 2


async def test_f9_smart_sending_hours_0_sends_anyway(clock: list[datetime]) -> None:
    clock[0] = OPENS
    first = flow([text()], flow_id="welcome")
    second = flow([text(smart_sending_hours=0)], flow_id="nps")
    work = await ready(clock, first, second)
    await handlers.enter_from_events([received(event(phone_number=NYC))], work)
    assert len(requests(work)) == 2
