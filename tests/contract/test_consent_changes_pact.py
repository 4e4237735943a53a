"""`consent-changes`: the suppression service and the flow executor (consumers) record the
subscription events they handle; the consent service (provider) verifies them (C9, C10,
F2, F7, S5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.consent.domain.model import Policy, ProfileConsent
from services.consent.domain.receipts import receipt_id
from services.consent.domain.rules import decide
from services.consent.handlers import act_from_command, change_messages
from services.flow_executor.domain.reachability import blocked_reason
from services.flow_executor.domain.triggers import list_flows
from shared.contracts import ConsentChanged, ConsentCommand, FlowDefinition, topics
from shared.contracts.flows import EmailStep
from shared.messaging.batches import json_parser
from tests.contract.conftest import pact, record, timestamp, verify_provider, write

match = pact.match

LIST_JOINED = "a profile subscribed to a list"
UNSUBSCRIBED = "a profile unsubscribed from email marketing"
CLIENT_OPT_OUT = "a profile opted out of one client's email"
RESUBSCRIBED = "a profile re-subscribed to email marketing with evidence"


def channel(status: str) -> dict[str, Any]:
    return {"status": status, "consented_at": timestamp(), "method": match.str("form")}


def body(event: str, *, email: str = "subscribed", **extra: Any) -> dict[str, Any]:
    """A `consent-changes` message as a consumer relies on it; `extra` overrides fields."""
    state: dict[str, Any] = {"email": channel(email)}
    state.update(extra.pop("state", {}))
    return {
        "schema_version": 1,
        "type": event,
        "change_id": match.str("ch-1"),
        "account_id": match.str("acme"),
        "profile_id": match.str("p-1"),
        "profile": {"id": match.str("p-1"), "email": match.str("ada@example.com")},
        "channel": "email",
        "consented_at": timestamp(),
        "historical_import": False,
        "state": state,
        "occurred_at": timestamp(),
        **extra,
    }


def _interaction(p: Any, description: str, state: str, message: dict[str, Any]) -> None:
    (
        p.upon_receiving(description, "Async")
        .given(state)
        .with_body(message, content_type="application/json")
        .with_metadata({"kafka_topic": topics.CONSENT_CHANGES})
    )


LIST_FLOW = FlowDefinition.model_validate(
    {
        "account_id": "acme",
        "flow_id": "welcome",
        "version": 1,
        "name": "Welcome",
        "trigger": {"type": "list", "list_id": "newsletter"},
        "steps": [{"id": "hello", "type": "email", "template_id": "t-1", "next": None}],
    }
)


def flow_executor_pact(pact_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The executor's side: parse with its real parser, then its pure domain decides list
    entry (F2) and reachability (F6, F7, C10) from the message alone."""
    p = pact.Pact("flow-executor", "consent").with_specification("V4")
    _interaction(
        p,
        LIST_JOINED,
        "the profile joined a list through a form",
        body(
            "Subscribed to List",
            list_id=match.str("newsletter"),
            state={"lists": match.like({"newsletter": "subscribed"})},
        ),
    )
    _interaction(
        p,
        UNSUBSCRIBED,
        "the profile clicked unsubscribe",
        body(
            "Unsubscribed from Email Marketing",
            email="unsubscribed",
            method=match.str("link"),
            # C17: the executor names the receipt its decision rests on.
            receipt_id=match.str("r-1"),
        ),
    )
    _interaction(
        p,
        CLIENT_OPT_OUT,
        "the profile opted out at client level",
        body(
            "Unsubscribed from Email Marketing",
            scope=match.str("client:c-9"),
            state={"opt_outs": match.each_like("client:c-9")},
        ),
    )
    parse = json_parser(ConsentChanged)
    seen: dict[str, Any] = {}

    def handle(raw: Any, metadata: dict[str, Any]) -> None:
        change = parse(record(metadata["kafka_topic"], raw))
        consent = change.state.model_dump(mode="json")
        person = change.profile.model_dump()
        if change.type == "Subscribed to List":
            seen["entered"] = [f.flow_id for f in list_flows([LIST_FLOW], change)]
        elif change.scope:
            step = EmailStep(id="s", type="email", client_id="c-9")
            other = step.model_copy(update={"client_id": "c-1"})
            seen["client"] = blocked_reason(step, consent, [], person)
            seen["other_client"] = blocked_reason(other, consent, [], person)
        else:
            step = EmailStep(id="s", type="email")
            seen["unsubscribed"] = blocked_reason(step, consent, [], person)
            seen["receipt"] = bool(change.receipt_id)

    p.verify(handle, "Async")
    return write(p, pact_dir), seen


def suppression_pact(pact_dir: Path) -> tuple[Path, list[ConsentChanged]]:
    """The suppression service's side: a re-subscribe with evidence lifts a spam-complaint
    suppression (S5, C11); it reads the event type, channel, method and account/profile."""
    p = pact.Pact("suppression", "consent").with_specification("V4")
    _interaction(
        p,
        RESUBSCRIBED,
        "the profile had made a spam complaint",
        body("Subscribed to Email Marketing", method=match.str("manual")),
    )
    parse = json_parser(ConsentChanged)
    seen: list[ConsentChanged] = []
    p.verify(lambda raw, md: seen.append(parse(record(md["kafka_topic"], raw))), "Async")
    return write(p, pact_dir), seen


# --- provider: consent ---------------------------------------------------------------
# The messages come from the consent service's own code: its commands are decided by the
# pure domain (`decide`) and turned into messages by `change_messages`, exactly as the
# handler publishes them.

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
PROFILE = {"id": "p-1", "email": "ada@example.com"}


def _published(commands: list[dict[str, Any]], event: str) -> tuple[str, ConsentChanged]:
    """Apply `commands` in order to a new profile and return the `event` message the last
    one publishes."""
    state = ProfileConsent.from_json(None)
    published: list[ConsentChanged] = []
    for n, fields in enumerate(commands):
        cmd = ConsentCommand.model_validate(
            {
                "command_id": f"c-{n}",
                "account_id": "acme",
                "profile": PROFILE,
                "channel": "email",
                "consented_at": AT + timedelta(minutes=n),
                **fields,
            }
        )
        act = act_from_command(cmd)
        outcome = decide(state, act, Policy(email_double_opt_in=False), AT + timedelta(minutes=n))
        state = outcome.state
        rid = receipt_id("acme", "p-1", act.act_id) if outcome.history else None
        published = change_messages("acme", "p-1", PROFILE, act, outcome, AT, rid)
    return topics.CONSENT_CHANGES, next(m for m in published if m.type == event)


SUBSCRIBE = {"action": "subscribe", "method": "form"}
PROVIDER = {
    LIST_JOINED: lambda: _published([{**SUBSCRIBE, "list_id": "newsletter"}], "Subscribed to List"),
    UNSUBSCRIBED: lambda: _published(
        [SUBSCRIBE, {"action": "unsubscribe", "method": "link"}],
        "Unsubscribed from Email Marketing",
    ),
    CLIENT_OPT_OUT: lambda: _published(
        [
            SUBSCRIBE,
            {
                "action": "unsubscribe",
                "method": "link",
                "scope": {"level": "client", "client_id": "c-9"},
            },
        ],
        "Unsubscribed from Email Marketing",
    ),
    RESUBSCRIBED: lambda: _published(
        [
            SUBSCRIBE,
            {"action": "unsubscribe", "method": "link"},
            {"action": "resubscribe", "method": "manual", "evidence": "signed form #42"},
        ],
        "Subscribed to Email Marketing",
    ),
}


def test_c9_flow_executor_pact_covers_the_events_it_handles(pact_dir: Path) -> None:
    path, seen = flow_executor_pact(pact_dir)
    assert path.exists()
    assert seen == {
        "entered": ["welcome"],
        "unsubscribed": "Skipped: unsubscribed from email",
        "receipt": True,
        "client": "Skipped: opted out (client:c-9)",
        "other_client": None,
    }


def test_c9_suppression_pact_covers_the_events_it_handles(pact_dir: Path) -> None:
    path, seen = suppression_pact(pact_dir)
    assert path.exists()
    assert [(c.type, c.channel, c.method) for c in seen] == [
        ("Subscribed to Email Marketing", "email", "manual")
    ]


@pytest.mark.parametrize("consumer", ["flow-executor", "suppression"])
def test_c9_consent_publishes_what_its_consumers_expect(pact_dir: Path, consumer: str) -> None:
    make = flow_executor_pact if consumer == "flow-executor" else suppression_pact
    path, _ = make(pact_dir)
    verify_provider("consent", path, PROVIDER)


def test_c9_verifier_rejects_an_event_without_the_consent_state(pact_dir: Path) -> None:
    """C9: each event carries the full state; a message without it fails verification."""
    path, _ = suppression_pact(pact_dir)

    def stateless() -> tuple[str, dict[str, Any]]:
        message = PROVIDER[RESUBSCRIBED]()[1].model_dump(mode="json")
        del message["state"]
        return topics.CONSENT_CHANGES, message

    with pytest.raises(RuntimeError):
        verify_provider("consent", path, {RESUBSCRIBED: stateless})
