"""The consent service's Kafka declarations (`entrypoints/kafka.py`): the consumer names
are its consumer groups and inboxes, so they never change with the code around them;
every subscriber runs a use case of `handlers.py`, `(batch, work)`, on the work
`bootstrap` makes, and says what the service does with its topic (the AsyncAPI document
shows it)."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

from pydantic import SecretStr

from services.consent import handlers
from services.consent.app import build
from services.consent.entrypoints import kafka
from shared.contracts import (
    ConsentChanged,
    PrivacyRequest,
    PrivacyResult,
    SmsOutbound,
    topics,
)
from shared.domain.identity import derived_id
from shared.health import Health
from shared.runtime import Runtime
from shared.settings import Settings
from tests.unit.consent.fakes import bootstrap
from tests.unit.consent.test_handlers import ACCOUNT, SINGLE, received
from tests.unit.recorded_edge import Recorded

GROUPS = {
    topics.CONSENT_COMMANDS: "consent.consent-commands",
    topics.SMS_INBOUND: "consent.sms-inbound",
    topics.SUPPRESSION_CHANGES: "consent.suppression-changes",
    topics.PRIVACY_REQUESTS: "consent.privacy-requests",
    topics.PRIVACY_RESULTS: "consent.privacy-results",
}


def declared() -> tuple[Recorded, Any]:
    edge, work = Recorded(), bootstrap(SINGLE)
    kafka.declare(edge, work)  # type: ignore[arg-type]
    return edge, work


def test_the_consumer_groups_and_use_cases_are_those_the_service_always_had() -> None:
    edge, work = declared()
    assert {t: s["consumer"] for t, s in edge.subscribed.items()} == GROUPS
    assert {t: s["use_case"] for t, s in edge.subscribed.items()} == {
        topics.CONSENT_COMMANDS: handlers.on_commands,
        topics.SMS_INBOUND: handlers.on_sms_inbound,
        topics.SUPPRESSION_CHANGES: handlers.on_suppression_changes,
        topics.PRIVACY_REQUESTS: handlers.on_privacy_requests,
        topics.PRIVACY_RESULTS: handlers.on_privacy_results,
    }
    for s in edge.subscribed.values():
        assert s["work"] is work and s["description"]
        assert list(inspect.signature(s["use_case"]).parameters) == ["batch", "work"]
    assert edge.published == {
        topics.CONSENT_CHANGES: ConsentChanged,
        topics.SMS_OUTBOUND: SmsOutbound,
        topics.PRIVACY_RESULTS: PrivacyResult,
    }


def test_x2_inbox_ids_are_those_the_service_always_had() -> None:
    ids = {t: s.get("message_id") for t, s in declared()[0].subscribed.items()}
    msg = type("M", (), {"account_id": "a", "command_id": "c", "message_id": "m"})()
    assert ids[topics.CONSENT_COMMANDS] is None  # the use case dedupes (on_commands)
    assert ids[topics.SMS_INBOUND](msg) == derived_id("a", "m")
    assert ids[topics.SUPPRESSION_CHANGES](type("C", (), {"change_id": "c-1"})()) == "c-1"
    part = type("R", (), {"account_id": "a", "request_id": "r", "service": "flow_executor"})()
    assert ids[topics.PRIVACY_RESULTS](part) == derived_id("a", "r", "flow_executor")
    request = type("Q", (), {"account_id": "a", "request_id": "r"})()
    assert ids[topics.PRIVACY_REQUESTS](request) == derived_id("a", "r")


class OnePerson:
    """A `PrivacyStore` that holds one profile (the privacy SQL is tested on PostgreSQL)."""

    service = "consent"

    async def resolve(self, request: PrivacyRequest) -> list[str]:
        return ["p1"]

    async def export(self, account_id: str, profile_ids: list[str]) -> dict[str, Any]:
        return {"states": [{"profile_id": p} for p in profile_ids]}

    async def erase(self, request: PrivacyRequest, profile_ids: list[str]) -> dict[str, int]:
        return {}

    async def drop_unpublished(self, request: PrivacyRequest, profile_ids: list[str]) -> int:
        return 0


async def test_p1_a_request_is_recorded_answered_and_every_part_collected() -> None:
    work = bootstrap(SINGLE)(None)
    work.privacy = OnePerson()
    request = PrivacyRequest(
        request_id=uuid.uuid4().hex, account_id=ACCOUNT, action="export", profile_id="p1"
    )
    await handlers.on_privacy_requests([received(request, topics.PRIVACY_REQUESTS)], work)
    assert work.privacy_requests.requests == [request]
    (part,) = work.outbox.on(topics.PRIVACY_RESULTS)
    assert (part.service, part.profile_ids) == ("consent", ["p1"])
    assert part.data == {"states": [{"profile_id": "p1"}]}
    await handlers.on_privacy_results([received(part, topics.PRIVACY_RESULTS)], work)
    assert work.privacy_requests.parts == [part]


def test_the_service_builds_on_a_real_runtime() -> None:
    """`app.build` wires the declarations onto FastStream, the routes and the mail worker
    (nothing connects)."""
    settings = Settings(
        privacy_hash_secret=SecretStr("unit-test-hash-secret-of-at-least-32-bytes"),
        link_secret=SecretStr("unit-test-link-secret-of-at-least-32-bytes"),
    )
    rt = Runtime("consent", settings, Health())
    build(rt)
    assert sorted(rt.kafka.consumers) == sorted(GROUPS.values())
    assert rt.routes and len(rt.workers) == 1
