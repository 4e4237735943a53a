"""`alert-requests`: the alert dispatcher (consumer) records the requests it handles; the
flow executor (provider) verifies them with requests its own code builds (F2, A5, A7)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from services.alert_dispatcher.domain.templates import render
from services.flow_executor.domain.messages import alert_request
from services.flow_executor.domain.runs import Run
from services.flow_executor.domain.triggers import event_context
from shared.contracts import AlertRequested, FlowDefinition, ProfileEvent, topics
from shared.domain.flow_rules import normalise_recipients
from shared.messaging.batches import json_parser
from tests.contract.conftest import pact, record, timestamp, verify_provider, write

match = pact.match
METRIC = "an alert request from a metric-triggered flow"
LIST = "an alert request from a list-triggered flow"


def _body(trigger: str, event: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "type": "alert_requested",
        "alert_id": match.str("0b6c3a57-run:alert"),
        "account_id": match.str("acme"),
        "flow_id": match.str("nps"),
        "flow_version": match.int(3),
        "step_id": match.str("alert"),
        "profile_id": match.str("p-1"),
        "profile": {
            "id": match.str("p-1"),
            "email": match.str("ada@example.com"),
            "first_name": match.str("Ada"),
            "properties": match.like({"tier": "gold"}),
        },
        "event": event,
        "trigger_type": trigger,
        "action": {
            "recipients": match.each_like("cx-lead@acme.test"),
            "from_email": match.str("alerts@acme.test"),
            "from_name": match.str("Acme alerts"),
            "subject": match.str("Detractor: {{ person.email }}"),
            "body": match.str("{{ person.first_name }} scored {{ event.score }}"),
        },
        "requested_at": timestamp(),
    }


def consumer_pact(pact_dir: Path) -> tuple[Path, list[tuple[AlertRequested, str, list[str]]]]:
    """The dispatcher's side: parse with its real parser, fold recipients and render the
    subject with its real template code."""
    p = pact.Pact("alert-dispatcher", "flow-executor").with_specification("V4")
    for description, state, trigger, event in (
        (METRIC, "a live metric flow with an internal alert", "metric", match.like({"score": 3})),
        (LIST, "a live list flow with an internal alert", "list", {}),
    ):
        (
            p.upon_receiving(description, "Async")
            .given(state)
            .with_body(_body(trigger, event), content_type="application/json")
            .with_metadata({"kafka_topic": topics.ALERT_REQUESTS})
        )
    parse = json_parser(AlertRequested)
    handled: list[tuple[AlertRequested, str, list[str]]] = []

    def handle(body: Any, metadata: dict[str, Any]) -> None:
        request = parse(record(metadata["kafka_topic"], body))
        recipients, errors = normalise_recipients(list(request.action.recipients))
        assert not errors
        subject = render(
            request.action.subject,
            request.profile.model_dump(),
            request.event,
            html=False,
            metric_flow=request.trigger_type == "metric",
        )
        handled.append((request, subject, recipients))

    p.verify(handle, "Async")
    return write(p, pact_dir), handled


NPS_FLOW = {
    "account_id": "acme",
    "flow_id": "nps",
    "version": 3,
    "name": "NPS detractors",
    "trigger": {
        "type": "metric",
        "metric": "Left NPS Score",
        "filter": {"property": "score", "op": "lte", "value": 6},
    },
    "steps": [
        {"id": "wait", "type": "delay", "seconds": 0, "next": "alert"},
        {
            "id": "alert",
            "type": "internal_alert",
            "mode": "live",
            "recipients": ["cx-lead@acme.test"],
            "from_email": "alerts@acme.test",
            "from_name": "Acme alerts",
            "subject": "Detractor: {{ person.email }}",
            "body": "{{ person.first_name }} scored {{ event.score }}",
            "next": None,
        },
    ],
}
EVENT = {
    "event_id": "e-1",
    "account_id": "acme",
    "metric": "Left NPS Score",
    "profile": {
        "id": "p-1",
        "email": "ada@example.com",
        "phone_number": "+15555550100",
        "first_name": "Ada",
        "properties": {"tier": "gold"},
    },
    "properties": {"score": 3},
    "time": "2026-11-23T10:00:00Z",
}


def built_metric_request() -> tuple[str, AlertRequested]:
    """What the flow executor publishes when a metric event reaches the alert step."""
    flow = FlowDefinition.model_validate(NPS_FLOW)
    event = ProfileEvent.model_validate(EVENT)
    run = Run(uuid.uuid4(), flow, event.profile.id, event_context(event), "metric")
    return topics.ALERT_REQUESTS, alert_request(run, flow.steps[1])  # type: ignore[arg-type]


def built_list_request() -> tuple[str, AlertRequested]:
    """The same step in a list-triggered flow: no event properties go to the dispatcher."""
    flow = FlowDefinition.model_validate(
        {**NPS_FLOW, "trigger": {"type": "list", "list_id": "newsletter"}}
    )
    person = ProfileEvent.model_validate(EVENT).profile.model_dump()
    context = {"event": {"list_id": "newsletter"}, "person": person}
    run = Run(uuid.uuid4(), flow, "p-1", context, "list")
    return topics.ALERT_REQUESTS, alert_request(run, flow.steps[1])  # type: ignore[arg-type]


def test_a5_dispatcher_pact_covers_the_requests_it_handles(pact_dir: Path) -> None:
    path, handled = consumer_pact(pact_dir)
    assert path.exists()
    by_trigger = {req.trigger_type: (req, subject, rcpts) for req, subject, rcpts in handled}
    assert by_trigger["metric"][1] == "Detractor: ada@example.com"
    assert by_trigger["metric"][2] == ["cx-lead@acme.test"]
    assert by_trigger["list"][0].event == {}


def test_f2_flow_executor_builds_what_the_dispatcher_expects(pact_dir: Path) -> None:
    path, _ = consumer_pact(pact_dir)
    verify_provider("flow-executor", path, {METRIC: built_metric_request, LIST: built_list_request})


def test_f2_verifier_rejects_a_wrong_alert_request(pact_dir: Path) -> None:
    """The verification is not vacuous: a message with a retyped field and a missing
    one fails it."""
    path, _ = consumer_pact(pact_dir)

    def wrong() -> tuple[str, dict[str, Any]]:
        body = built_metric_request()[1].model_dump(mode="json")
        body["flow_version"] = "3"
        del body["alert_id"]
        return topics.ALERT_REQUESTS, body

    with pytest.raises(RuntimeError):
        verify_provider("flow-executor", path, {METRIC: wrong, LIST: built_list_request})
