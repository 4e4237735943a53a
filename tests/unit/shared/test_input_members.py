"""X8: how many members of its main input's consumer group each service runs in one
process (`KAFKA_INPUT_CONSUMERS`, else the service's own choice), built on a real
runtime (nothing connects)."""

from __future__ import annotations

import importlib
import secrets

import pytest
from pydantic import SecretStr

from shared.contracts import topics
from shared.health import Health
from shared.runtime import Runtime
from shared.settings import Settings

MAIN_INPUTS = {
    "flow_executor": topics.PROFILE_EVENTS,
    "consent": topics.CONSENT_COMMANDS,
    "alert_dispatcher": topics.ALERT_REQUESTS,
    "suppression": topics.SUPPRESSION_COMMANDS,
}


def _members(service: str, **settings: object) -> dict[str, int]:
    keys = {k: SecretStr(secrets.token_hex(32)) for k in ("link_secret", "privacy_hash_secret")}
    rt = Runtime(service, Settings(**keys, **settings), Health())  # type: ignore[arg-type]
    importlib.import_module(f"services.{service}.app").build(rt)
    return {s.topic: len(s.members) for s in rt.kafka.subscriptions}


@pytest.mark.parametrize(
    ("service", "expected"),
    [("flow_executor", 2), ("consent", 1), ("alert_dispatcher", 1), ("suppression", 1)],
)
def test_x8_each_main_input_has_its_services_members_and_every_side_input_one(
    service: str, expected: int
) -> None:
    """Unset, the flow executor reads `profile-events` with two members (a quarter more
    intake, measured); every other main input with one, and every side input with one."""
    found = _members(service)
    assert found.pop(MAIN_INPUTS[service]) == expected
    assert set(found.values()) == {1}


@pytest.mark.parametrize("service", sorted(MAIN_INPUTS))
@pytest.mark.parametrize("n", [1, 3])
def test_x8_kafka_input_consumers_sets_the_members_of_every_main_input(
    service: str, n: int
) -> None:
    found = _members(service, kafka_input_consumers=n)
    assert found.pop(MAIN_INPUTS[service]) == n
    assert set(found.values()) == {1}


def test_x8_kafka_input_consumers_below_one_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="kafka_input_consumers"):
        Settings(kafka_input_consumers=0)
