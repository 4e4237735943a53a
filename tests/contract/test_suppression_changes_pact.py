"""`suppression-changes`: the consent service and the flow executor (consumers) record the
changes they handle; the suppression service (provider) verifies them (S1, S3, S6, F7)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.flow_executor.domain.reachability import blocked_reason
from services.suppression.domain.rules import Command, SuppressionState, decide
from services.suppression.handlers import change_messages
from shared.contracts import SuppressionChanged, topics
from shared.contracts.flows import EmailStep
from shared.messaging.batches import json_parser
from tests.contract.conftest import pact, record, timestamp, verify_provider, write

match = pact.match

SPAM = "a spam complaint suppressed the profile's email"
HARD_BOUNCE = "a hard bounce suppressed the profile's email"
LIST_ONLY = "the profile was suppressed from one list"


def body(reason: str, suppressions: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "type": "suppressed",
        "change_id": match.str("sc-1"),
        "account_id": match.str("acme"),
        "profile_id": match.str("p-1"),
        "profile": {"id": match.str("p-1"), "email": match.str("ada@example.com")},
        "channel": "email",
        "reason": reason,
        "suppressions": suppressions,
        "occurred_at": timestamp(),
    }


def suppression(reason: str, list_id: Any = None) -> Any:
    """One suppression in force, with the keys the executor's reachability reads."""
    return match.each_like({"reason": reason, "channel": "email", "list_id": list_id})


def _interaction(p: Any, description: str, state: str, message: dict[str, Any]) -> None:
    (
        p.upon_receiving(description, "Async")
        .given(state)
        .with_body(message, content_type="application/json")
        .with_metadata({"kafka_topic": topics.SUPPRESSION_CHANGES})
    )


def consent_pact(pact_dir: Path) -> tuple[Path, list[SuppressionChanged]]:
    """The consent service's side (S3): a spam complaint makes email consent unsubscribed;
    it reads the type, reason, channel and the account/profile."""
    p = pact.Pact("consent", "suppression").with_specification("V4")
    _interaction(
        p,
        SPAM,
        "the profile's mailbox provider reported a complaint",
        body("spam_complaint", suppression("spam_complaint")),
    )
    parse = json_parser(SuppressionChanged)
    seen: list[SuppressionChanged] = []
    p.verify(lambda raw, md: seen.append(parse(record(md["kafka_topic"], raw))), "Async")
    return write(p, pact_dir), seen


def flow_executor_pact(pact_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The executor's side (F7, S6): its reachability reads `reason`, `channel` and
    `list_id` of each suppression in force."""
    p = pact.Pact("flow-executor", "suppression").with_specification("V4")
    _interaction(
        p,
        HARD_BOUNCE,
        "the profile's address bounced hard",
        body("hard_bounce", suppression("hard_bounce")),
    )
    _interaction(
        p,
        LIST_ONLY,
        "an operator suppressed the profile from the newsletter",
        body("manual", suppression("manual", match.str("newsletter"))),
    )
    parse = json_parser(SuppressionChanged)
    seen: dict[str, Any] = {}

    def handle(raw: Any, metadata: dict[str, Any]) -> None:
        change = parse(record(metadata["kafka_topic"], raw))
        person = change.profile.model_dump()
        news = EmailStep(id="s", type="email", list_id="newsletter")
        other = EmailStep(id="s", type="email", list_id="offers")
        seen[change.reason] = (
            blocked_reason(news, None, change.suppressions, person),
            blocked_reason(other, None, change.suppressions, person),
        )

    p.verify(handle, "Async")
    return write(p, pact_dir), seen


# --- provider: suppression -----------------------------------------------------------
# The messages come from the suppression service's own code: `decide` and the builder
# its handler publishes with.

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _change(reason: str, list_id: str | None = None) -> tuple[str, SuppressionChanged]:
    """The message the suppression service's own code publishes when a new profile is
    suppressed for `reason`: its pure `decide` and its message builder."""
    outcome = decide(SuppressionState(), Command("suppress", reason, AT, "email", list_id), 7)
    [message] = change_messages(
        "acme", "p-1", {"id": "p-1", "email": "ada@example.com"}, ["sc-9"], outcome, AT
    )
    return topics.SUPPRESSION_CHANGES, message


PROVIDER = {
    SPAM: lambda: _change("spam_complaint"),
    HARD_BOUNCE: lambda: _change("hard_bounce"),
    LIST_ONLY: lambda: _change("manual", "newsletter"),
}


def test_s3_consent_pact_covers_the_spam_complaint_it_handles(pact_dir: Path) -> None:
    path, seen = consent_pact(pact_dir)
    assert path.exists()
    assert [(c.type, c.reason, c.channel) for c in seen] == [
        ("suppressed", "spam_complaint", "email")
    ]


def test_s6_flow_executor_pact_covers_the_changes_it_handles(pact_dir: Path) -> None:
    path, seen = flow_executor_pact(pact_dir)
    assert path.exists()
    # A global suppression blocks every list; a list-specific one only its own list.
    assert set(seen) == {"hard_bounce", "manual"}
    assert all(r and "hard_bounce" in r for r in seen["hard_bounce"])
    news, offers = seen["manual"]
    assert news and "manual" in news
    assert offers is None


@pytest.mark.parametrize("consumer", ["consent", "flow-executor"])
def test_s6_suppression_publishes_what_its_consumers_expect(pact_dir: Path, consumer: str) -> None:
    make = consent_pact if consumer == "consent" else flow_executor_pact
    path, _ = make(pact_dir)
    verify_provider("suppression", path, PROVIDER)


def test_s6_verifier_rejects_suppressions_without_their_reason(pact_dir: Path) -> None:
    path, _ = flow_executor_pact(pact_dir)

    def bare() -> tuple[str, dict[str, Any]]:
        message = PROVIDER[HARD_BOUNCE]()[1].model_dump(mode="json")
        message["suppressions"] = [{"channel": "email"}]
        return topics.SUPPRESSION_CHANGES, message

    with pytest.raises(RuntimeError):
        verify_provider("suppression", path, {**PROVIDER, HARD_BOUNCE: bare})
