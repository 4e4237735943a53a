"""An example consumer outside the project: a CRM sync that reads `alert-outcomes` and
`consent-changes` with plain JSON (it does not import consentflow). Copy this shape to
write your own pact; docs/architecture.md ("Contracts for producers and consumers") explains it.

The alert dispatcher and the consent service verify these pacts with their own code."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from services.alert_dispatcher.domain.outcomes import NO_CONFIRMED, decide
from shared.contracts import AlertOutcome, AlertRequested, topics
from tests.contract import test_consent_changes_pact as consent_pacts
from tests.contract.conftest import pact, timestamp, verify_provider, write

match = pact.match
CONSUMER = "crm-sync"

SENT = "an alert was sent to its confirmed recipients"
SKIPPED = "an alert was skipped for want of confirmed recipients"
UNSUBSCRIBED = "a profile unsubscribed from email marketing"


def crm_row(message: dict[str, Any]) -> dict[str, Any]:
    """The external consumer's own code: one CRM timeline row per message."""
    if "alert_id" in message:
        return {
            "profile": message["profile_id"],
            "what": f"internal alert {message['type']}",
            "detail": message.get("reason") or ", ".join(message["recipients"]),
            "at": datetime.fromisoformat(message["occurred_at"]),
        }
    return {
        "profile": message["profile_id"],
        "what": message["type"],
        "detail": message["state"]["email"]["status"],
        "at": datetime.fromisoformat(message["occurred_at"]),
    }


def _outcome_body(kind: str, recipients: Any, reason: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "type": kind,
        "alert_id": match.str("run-1:alert"),
        "account_id": match.str("acme"),
        "flow_id": match.str("nps"),
        "step_id": match.str("alert"),
        "profile_id": match.str("p-1"),
        "recipients": recipients,
        "reason": reason,
        "occurred_at": timestamp(),
    }


def outcomes_pact(pact_dir: Path) -> tuple[Path, list[dict[str, Any]]]:
    p = pact.Pact(CONSUMER, "alert-dispatcher").with_specification("V4")
    for description, body in (
        (SENT, _outcome_body("sent", match.each_like("cx-lead@acme.test"), None)),
        (SKIPPED, _outcome_body("skipped", [], NO_CONFIRMED)),
    ):
        (
            p.upon_receiving(description, "Async")
            .given("an internal alert flow in live mode")
            .with_body(body, content_type="application/json")
            .with_metadata({"kafka_topic": topics.ALERT_OUTCOMES})
        )
    rows: list[dict[str, Any]] = []
    p.verify(lambda raw, _md: rows.append(crm_row(json.loads(raw))), "Async")
    return write(p, pact_dir), rows


def consent_pact(pact_dir: Path) -> tuple[Path, list[dict[str, Any]]]:
    p = pact.Pact(CONSUMER, "consent").with_specification("V4")
    (
        p.upon_receiving(UNSUBSCRIBED, "Async")
        .given("the profile clicked unsubscribe")
        .with_body(
            {
                "schema_version": 1,
                "type": "Unsubscribed from Email Marketing",
                "change_id": match.str("ch-1"),
                "account_id": match.str("acme"),
                "profile_id": match.str("p-1"),
                "channel": "email",
                "state": {"email": {"status": "unsubscribed"}},
                "occurred_at": timestamp(),
            },
            content_type="application/json",
        )
        .with_metadata({"kafka_topic": topics.CONSENT_CHANGES})
    )
    rows: list[dict[str, Any]] = []
    p.verify(lambda raw, _md: rows.append(crm_row(json.loads(raw))), "Async")
    return write(p, pact_dir), rows


# --- providers -----------------------------------------------------------------------

REQUEST = AlertRequested(
    alert_id=f"{uuid.uuid4()}:alert",
    account_id="acme",
    flow_id="nps",
    flow_version=3,
    step_id="alert",
    profile_id="p-1",
    profile={"id": "p-1", "email": "ada@example.com"},
    action={
        "recipients": ["cx-lead@acme.test"],
        "from_email": "alerts@acme.test",
        "subject": "Detractor",
        "body": "scored low",
    },
)


def _outcome(deliveries: dict[str, str]) -> tuple[str, AlertOutcome]:
    """The dispatcher's domain decides the outcome from the deliveries by recipient."""
    decided = decide(deliveries)
    assert decided is not None
    return topics.ALERT_OUTCOMES, AlertOutcome(
        type=decided.type,
        alert_id=REQUEST.alert_id,
        account_id=REQUEST.account_id,
        flow_id=REQUEST.flow_id,
        step_id=REQUEST.step_id,
        profile_id=REQUEST.profile_id,
        recipients=decided.recipients,
        failed_recipients=decided.failed_recipients,
        reason=decided.reason,
    )


DISPATCHER = {
    SENT: lambda: _outcome({"cx-lead@acme.test": "sent"}),
    SKIPPED: lambda: _outcome({"cx-lead@acme.test": "skipped"}),
}

# The consent service's own code builds the message (its domain and message builder).
CONSENT = {
    UNSUBSCRIBED: lambda: consent_pacts.PROVIDER[consent_pacts.UNSUBSCRIBED](),
}


def test_a6_external_consumer_reads_alert_outcomes(pact_dir: Path) -> None:
    path, rows = outcomes_pact(pact_dir)
    assert path.exists()
    assert {r["detail"] for r in rows} == {"cx-lead@acme.test", NO_CONFIRMED}


def test_a6_dispatcher_publishes_what_external_consumers_expect(pact_dir: Path) -> None:
    path, _ = outcomes_pact(pact_dir)
    verify_provider("alert-dispatcher", path, DISPATCHER)


def test_c9_external_consumer_reads_consent_changes(pact_dir: Path) -> None:
    path, rows = consent_pact(pact_dir)
    assert path.exists()
    assert rows[0]["detail"] == "unsubscribed"


def test_c9_consent_publishes_what_external_consumers_expect(pact_dir: Path) -> None:
    path, _ = consent_pact(pact_dir)
    verify_provider("consent", path, CONSENT)


def test_a6_verifier_rejects_an_outcome_without_its_reason(pact_dir: Path) -> None:
    """A skipped outcome must say why (A5); one without the reason fails verification."""
    path, _ = outcomes_pact(pact_dir)

    def silent() -> tuple[str, dict[str, Any]]:
        message = DISPATCHER[SKIPPED]()[1].model_dump(mode="json")
        message["reason"] = None
        return topics.ALERT_OUTCOMES, message

    with pytest.raises(RuntimeError):
        verify_provider("alert-dispatcher", path, {**DISPATCHER, SKIPPED: silent})
