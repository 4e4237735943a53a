"""The suppression service's Kafka declarations (`entrypoints/kafka.py`): the consumer
names are its consumer groups and inboxes, so they never change with the code around
them; every subscriber runs a use case of `handlers.py` on the work `bootstrap` makes,
and says what the service does with its topic (the AsyncAPI document shows it)."""

from __future__ import annotations

from services.suppression import handlers
from services.suppression.app import build
from services.suppression.entrypoints import kafka
from shared.contracts import PrivacyResult, SuppressionChanged, topics
from shared.health import Health
from shared.runtime import Runtime
from shared.settings import Settings
from tests.unit.recorded_edge import Recorded
from tests.unit.suppression.fakes import bootstrap

GROUPS = {
    topics.SUPPRESSION_COMMANDS: "suppression.suppression-commands",
    topics.CONSENT_CHANGES: "suppression.consent-changes",
    topics.PRIVACY_REQUESTS: "suppression.privacy-requests",
}


def test_the_consumer_groups_and_use_cases_are_those_the_service_always_had() -> None:
    edge, work = Recorded(), bootstrap(Settings())
    kafka.declare(edge, work)  # type: ignore[arg-type]
    assert {t: s["consumer"] for t, s in edge.subscribed.items()} == GROUPS
    assert {t: s["use_case"] for t, s in edge.subscribed.items()} == {
        topics.SUPPRESSION_COMMANDS: handlers.on_commands,
        topics.CONSENT_CHANGES: handlers.on_consent_changes,
        topics.PRIVACY_REQUESTS: handlers.on_privacy_requests,
    }
    assert all(s["work"] is work and s["description"] for s in edge.subscribed.values())
    assert edge.published == {
        topics.SUPPRESSION_CHANGES: SuppressionChanged,
        topics.PRIVACY_RESULTS: PrivacyResult,
    }
    assert all(edge.publisher_descriptions.values())


def test_x2_inbox_ids_are_unique_per_account() -> None:
    edge = Recorded()
    kafka.declare(edge, bootstrap(Settings()))  # type: ignore[arg-type]
    change_id = edge.subscribed[topics.CONSENT_CHANGES]["message_id"]
    assert change_id(type("C", (), {"change_id": "c-1"})()) == "c-1"


def test_the_service_builds_on_a_real_runtime() -> None:
    """`app.build` wires the declarations onto FastStream and the routes (nothing
    connects)."""
    rt = Runtime("suppression", Settings(), Health())
    build(rt)
    assert sorted(rt.kafka.consumers) == sorted(GROUPS.values())
    assert rt.routes and not rt.workers
