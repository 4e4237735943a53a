"""F2: an event's time later than its arrival (5 minutes of skew allowed) counts as its
arrival, so a future-dated event never pins the profile the executor keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.flow_executor import handlers
from services.flow_executor.domain import messages as mapping
from services.flow_executor.domain.event_time import SKEW, effective_time
from services.flow_executor.domain.messages import DefinitionRecord
from shared.contracts import MessageRequested, ProfileEvent, topics, utcnow
from shared.received import Received, Trace
from tests.unit.flow_executor.fakes import FakeWork
from tests.unit.flow_executor.flows import event, flow

ARRIVED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def received(message: Any) -> Received[Any]:
    return Received(message, None, Trace("test"))  # type: ignore[arg-type]


def test_f2_an_event_dated_in_the_future_counts_as_its_arrival() -> None:
    assert effective_time(datetime(2099, 1, 1, tzinfo=UTC), ARRIVED) == ARRIVED
    assert effective_time(ARRIVED + SKEW + timedelta(seconds=1), ARRIVED) == ARRIVED


def test_f2_an_event_within_the_allowed_skew_or_in_the_past_keeps_its_time() -> None:
    assert effective_time(ARRIVED + SKEW, ARRIVED) == ARRIVED + SKEW
    past = ARRIVED - timedelta(days=3)
    assert effective_time(past, ARRIVED) == past


def test_f2_the_profile_data_of_a_future_dated_event_is_observed_at_its_arrival() -> None:
    future = event().model_copy(update={"time": datetime(2099, 1, 1, tzinfo=UTC)})
    [observed] = mapping.event_profiles([future], {"acme"}, ARRIVED)
    assert observed.at == ARRIVED


def _dated(event_id: str, email: str, time: datetime) -> ProfileEvent:
    return event(email=email).model_copy(update={"event_id": event_id, "time": time})


async def test_f2_an_event_dated_2099_does_not_pin_the_address_a_later_event_brings() -> None:
    work = FakeWork()
    # Both mails go: smart sending (F9) is off for this step.
    mail = {"id": "mail", "type": "email", "template_id": "t-1", "smart_sending_hours": 0}
    await handlers.save_definitions([received(DefinitionRecord(flow([mail]), "0:0:x"))], work)
    future = _dated("e-1", "old@example.com", datetime(2099, 1, 1, tzinfo=UTC))
    await handlers.enter_from_events([received(future)], work)
    later = _dated("e-2", "new@example.com", utcnow() + timedelta(seconds=1))
    await handlers.enter_from_events([received(later)], work)
    requests = work.on(topics.MESSAGE_REQUESTS)
    assert all(isinstance(r, MessageRequested) for r in requests)
    assert [r.profile.email for r in requests] == ["old@example.com", "new@example.com"]
    stored, _ = work.flows.profiles[("acme", "p-1")]
    assert stored["email"] == "new@example.com"
