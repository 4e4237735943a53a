"""Flow definitions and events for the flow executor's unit tests."""

from __future__ import annotations

from typing import Any

from shared.contracts import ConsentChanged, FlowDefinition, ProfileEvent


def alert(step_id: str = "alert", nxt: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "internal_alert",
        "recipients": ["lead@acme.test"],
        "from_email": "alerts@acme.test",
        "subject": "Detractor",
        "body": "{{ person.first_name }}",
        "next": nxt,
        **extra,
    }


def flow(steps: list[dict[str, Any]], **extra: Any) -> FlowDefinition:
    return FlowDefinition.model_validate(
        {
            "account_id": "acme",
            "flow_id": "nps",
            "version": 1,
            "name": "NPS",
            "trigger": {
                "type": "metric",
                "metric": "Left NPS Score",
                "filter": {"property": "score", "op": "lte", "value": 6},
            },
            "steps": steps,
            **extra,
        }
    )


def event(score: int = 3, historical: bool = False, **profile: Any) -> ProfileEvent:
    return ProfileEvent.model_validate(
        {
            "event_id": "e-1",
            "account_id": "acme",
            "metric": "Left NPS Score",
            "profile": {"id": "p-1", "email": "ada@example.com", **profile},
            "properties": {"score": score},
            "time": "2026-11-23T10:00:00Z",
            "historical_import": historical,
        }
    )


def list_change(list_id: str = "vip", type_: str = "Subscribed to List", **extra: Any):
    return ConsentChanged.model_validate(
        {
            "type": type_,
            "change_id": "c-1",
            "account_id": "acme",
            "profile_id": "p-1",
            "profile": {"id": "p-1", "email": "ada@example.com"},
            "channel": "email",
            "list_id": list_id,
            "consented_at": "2026-11-23T10:00:00Z",
            "state": {},
            **extra,
        }
    )
