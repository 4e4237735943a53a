"""The suppression use cases (`services/suppression/handlers.py`) over the in-memory unit
of work (`fakes.py`): no broker, no database. Each test names the SPEC rule it checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord

from services.suppression import handlers
from services.suppression.ports import Key
from shared.contracts import ConsentChanged, PrivacyRequest, SuppressionCommand, topics
from shared.received import Received, Trace
from shared.settings import Settings
from tests.unit.suppression.fakes import FakeSuppressionWork, bootstrap

ACCOUNT = "acme"
SETTINGS = Settings(soft_bounce_limit=3)
T0 = datetime.now(UTC) - timedelta(hours=1)


def received(message: Any, topic: str = topics.SUPPRESSION_COMMANDS) -> Received[Any]:
    record = ConsumerRecord(topic, 0, 7, 0, 0, b"k", message.to_bytes(), None, 1, 1, [])
    return Received(message, record, Trace(correlation_id=uuid.uuid4().hex))


def command(action: str, reason: str, n: int = 0, **kw: Any) -> SuppressionCommand:
    return SuppressionCommand.model_validate(
        {
            "command_id": uuid.uuid4().hex,
            "account_id": ACCOUNT,
            "profile": {"id": "p1", "email": "p1@example.test"},
            "action": action,
            "reason": reason,
            "occurred_at": T0 + timedelta(minutes=n),
            **kw,
        }
    )


def fresh() -> FakeSuppressionWork:
    """A new, empty unit of work, bound as the service binds its own."""
    return bootstrap(SETTINGS)(None)


async def run(work: FakeSuppressionWork, *cmds: SuppressionCommand) -> None:
    await handlers.on_commands([received(c) for c in cmds], work)


def reasons(work: FakeSuppressionWork) -> list[str]:
    return [s.reason for s in work.profiles.states[Key(ACCOUNT, "p1")].suppressions]


async def test_s1_s6_a_suppression_is_stored_and_published_with_all_in_force() -> None:
    work = fresh()
    await run(work, command("suppress", "manual"), command("suppress", "hard_bounce", 1))
    assert reasons(work) == ["manual", "hard_bounce"]
    first, second = work.on(topics.SUPPRESSION_CHANGES)
    assert [s["reason"] for s in second.suppressions] == ["manual", "hard_bounce"]
    assert first.type == "suppressed" and first.profile.email == "p1@example.test"
    assert [h.change for h in work.history.rows] == ["suppressed", "suppressed"]


async def test_s4_soft_bounces_suppress_after_the_limit_and_a_delivery_resets() -> None:
    work = fresh()
    await run(work, *(command("suppress", "soft_bounce", n) for n in range(2)))
    assert reasons(work) == []
    await run(work, command("suppress", "delivered", 2))
    assert work.profiles.states[Key(ACCOUNT, "p1")].soft_bounces == 0
    await run(work, *(command("suppress", "soft_bounce", n) for n in range(3, 6)))
    assert reasons(work) == ["soft_bounce"]


async def test_s5_unsuppressing_a_spam_complaint_is_dead_lettered() -> None:
    work = fresh()
    await run(work, command("suppress", "spam_complaint"))
    await run(work, command("unsuppress", "spam_complaint", 1))
    assert reasons(work) == ["spam_complaint"]
    (letter,) = work.on(topics.dlq(topics.SUPPRESSION_COMMANDS))
    assert "S5" in letter.error


async def test_s5_a_resubscribe_with_evidence_lifts_a_spam_complaint() -> None:
    work = fresh()
    await run(work, command("suppress", "spam_complaint"))
    change = ConsentChanged.model_validate(
        {
            "type": "Subscribed to Email Marketing",
            "change_id": "c1",
            "account_id": ACCOUNT,
            "profile_id": "p1",
            "profile": {"id": "p1"},
            "channel": "email",
            "method": "manual",
            "evidence": "signed form #42",
            "consented_at": T0 + timedelta(minutes=5),
            "occurred_at": T0 + timedelta(minutes=5),
            "state": {},
        }
    )
    await handlers.on_consent_changes([received(change, topics.CONSENT_CHANGES)], work)
    assert reasons(work) == []
    assert work.on(topics.SUPPRESSION_CHANGES)[-1].type == "unsuppressed"


async def test_c9_a_consent_event_for_a_profile_with_nothing_liftable_changes_nothing() -> None:
    work = fresh()
    await run(work, command("suppress", "hard_bounce"))
    before = list(work.published)
    change = ConsentChanged.model_validate(
        {
            "type": "Subscribed to Email Marketing",
            "change_id": "c2",
            "account_id": ACCOUNT,
            "profile_id": "p1",
            "profile": {"id": "p1"},
            "channel": "email",
            "method": "api",
            "consented_at": T0,
            "occurred_at": T0,
            "state": {},
        }
    )
    await handlers.on_consent_changes([received(change, topics.CONSENT_CHANGES)], work)
    assert reasons(work) == ["hard_bounce"] and work.published == before


def privacy_request(action: str, **named: str) -> PrivacyRequest:
    return PrivacyRequest.model_validate(
        {
            "request_id": uuid.uuid4().hex,
            "account_id": ACCOUNT,
            "action": action,
            "requested_at": T0,
            **named,
        }
    )


async def test_p1_p3_an_erase_blanks_the_attributes_and_keeps_the_suppressions() -> None:
    work = fresh()
    await run(work, command("suppress", "hard_bounce"))
    request = privacy_request("erase", email="P1@example.test")
    await handlers.on_privacy_requests([received(request, topics.PRIVACY_REQUESTS)], work)
    (part,) = work.on(topics.PRIVACY_RESULTS)
    assert (part.service, part.action, part.profile_ids) == ("suppression", "erase", ["p1"])
    assert work.profiles.profiles[Key(ACCOUNT, "p1")] == {"id": "p1"}
    assert reasons(work) == ["hard_bounce"]  # an erased person stays suppressed
