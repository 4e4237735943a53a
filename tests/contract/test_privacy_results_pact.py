"""`privacy-results`: the consent service (consumer) collects every service's part of a
data-subject request; suppression, flow executor and alert dispatcher (providers) verify
the parts their code publishes (P1, P3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.contracts import PrivacyRequest, PrivacyResult, topics
from shared.messaging.batches import json_parser
from shared.privacy_requests import result
from tests.contract.conftest import pact, record, timestamp, verify_provider, write

match = pact.match

EXPORT = "a service's part of an export"
ERASE = "a service's part of an erase"
PROVIDERS = {
    "suppression": "suppression",
    "flow-executor": "flow_executor",
    "alert-dispatcher": "alert_dispatcher",
}


def body(provider: str, action: str) -> dict[str, Any]:
    part: dict[str, Any] = {
        "schema_version": 1,
        "request_id": match.str("pr-1"),
        "account_id": match.str("acme"),
        "service": provider,
        "action": action,
        "profile_ids": match.each_like("p-1"),
        "completed_at": timestamp(),
    }
    if action == "export":
        part["data"] = match.type({"profiles": []})
    else:
        part["erased"] = match.type({"outbox": 0})
    return part


def consent_pact(pact_dir: Path, provider: str) -> tuple[Path, list[PrivacyResult]]:
    """What the consent service reads of a part: who sent it, for which request and
    profiles, and the data (export) or counts (erase)."""
    p = pact.Pact("consent", provider).with_specification("V4")
    for description, action in ((EXPORT, "export"), (ERASE, "erase")):
        (
            p.upon_receiving(description, "Async")
            .given(f"the {action} request was handled")
            .with_body(body(PROVIDERS[provider], action), content_type="application/json")
            .with_metadata({"kafka_topic": topics.PRIVACY_RESULTS})
        )
    parse = json_parser(PrivacyResult)
    seen: list[PrivacyResult] = []
    p.verify(lambda raw, md: seen.append(parse(record(md["kafka_topic"], raw))), "Async")
    return write(p, pact_dir), seen


def _part(service: str, action: str) -> tuple[str, PrivacyResult]:
    request = PrivacyRequest(request_id="pr-9", account_id="acme", profile_id="p-1", action=action)
    data = {"profiles": [{"profile_id": "p-1"}]} if action == "export" else None
    erased = {"outbox": 0, "rows": 2} if action == "erase" else None
    return topics.PRIVACY_RESULTS, result(request, service, ["p-1"], data, erased)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_p1_consent_pact_reads_each_services_part(pact_dir: Path, provider: str) -> None:
    path, seen = consent_pact(pact_dir, provider)
    assert path.exists()
    assert sorted(s.action for s in seen) == ["erase", "export"]
    assert {s.service for s in seen} == {PROVIDERS[provider]}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_p1_each_service_publishes_the_part_consent_expects(pact_dir: Path, provider: str) -> None:
    path, _ = consent_pact(pact_dir, provider)
    service = PROVIDERS[provider]
    verify_provider(
        provider,
        path,
        {EXPORT: lambda: _part(service, "export"), ERASE: lambda: _part(service, "erase")},
    )


def test_p1_verifier_rejects_a_part_without_its_profiles(pact_dir: Path) -> None:
    path, _ = consent_pact(pact_dir, "suppression")

    def bare() -> tuple[str, dict[str, Any]]:
        message = _part("suppression", "erase")[1].model_dump(mode="json")
        del message["profile_ids"]
        return topics.PRIVACY_RESULTS, message

    with pytest.raises(RuntimeError):
        verify_provider(
            "suppression",
            path,
            {EXPORT: lambda: _part("suppression", "export"), ERASE: bare},
        )
