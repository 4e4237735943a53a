"""JSON shapes of the read models (adapters/queries.py) that several resources show."""

from __future__ import annotations

from typing import Any

from services.alert_dispatcher.adapters.queries import AlertRow, DeliveryRow
from shared.http import iso


def sent_to(recipients: list[str], statuses: dict[str, str]) -> list[dict[str, str]]:
    """An action's "Sent to" list: each recipient with their opt-in status (A4)."""
    return [{"email": e, "status": statuses.get(e, "unconfirmed")} for e in recipients]


def delivery(d: DeliveryRow) -> dict[str, Any]:
    """A pending delivery held back by the sending limit shows as `waiting` (A8)."""
    waiting = d.status == "pending" and d.deferred_until is not None
    return {
        "email": d.email,
        "status": "waiting" if waiting else d.status,
        "error": d.error,
        "waiting_until": iso(d.deferred_until) if waiting else None,
        "completed_at": iso(d.completed_at),
    }


def alert(a: AlertRow) -> dict[str, Any]:
    """An alert with who got it and which profile triggered it (A6)."""
    deliveries = [delivery(d) for d in a.deliveries]
    status = a.status
    if status == "sending" and any(d["status"] == "waiting" for d in deliveries):
        status = "waiting"
    return {
        "alert_id": a.alert_id,
        "flow_id": a.flow_id,
        "step_id": a.step_id,
        "profile_id": a.profile_id,
        "status": status,
        "reason": a.reason,
        "sent_to": [d["email"] for d in deliveries if d["status"] == "sent"],
        "deliveries": deliveries,
        "requested_at": iso(a.requested_at),
        "completed_at": iso(a.completed_at),
    }
