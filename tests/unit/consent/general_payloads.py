"""The general writing of the `consent-changes` payloads (C9), which the service's fast
one (`services.consent.outputs.change_payloads`, written straight from the outcome) is
held to byte for byte: a document per change with the state's `view()`, written by
pydantic's own serialiser in the model's shape."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from services.consent.domain.model import Act, Outcome
from services.consent.outputs import _CHANNELS, _profile, change_id
from shared.contracts.base import SCHEMA_VERSION
from shared.domain.identity import derived_id


def change_documents(
    account_id: str,
    profile_id: str,
    profile: dict[str, Any],
    act: Act,
    outcome: Outcome,
    now: datetime,
    receipt_id: str | None = None,
) -> list[dict[str, Any]]:
    """The `consent-changes` messages of one decided act (C9), as documents: one per
    event, each with the full state after the act, and an id stable under redelivery
    (act id + event)."""
    if not outcome.events:
        return []
    state = outcome.state.view()
    stamp = act.act_at if act.historical_import else now
    prefix = derived_id(account_id, profile_id, act.act_id)
    return [
        {
            "type": event.type,
            "change_id": change_id(prefix, event),
            "account_id": account_id,
            "profile_id": profile_id,
            "profile": profile,
            "channel": event.channel,
            "list_id": event.list_id,
            "scope": event.scope,
            "method": act.method,
            "consented_at": stamp,
            "historical_import": act.historical_import,
            "evidence": act.evidence,
            "state": state,
            "occurred_at": now,
            "act_at": act.act_at,
            "receipt_id": receipt_id,
        }
        for event in outcome.events
    ]


def _state(view: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for key in _CHANNELS:
        out[key] = {"schema_version": SCHEMA_VERSION, **view[key]}
    out["lists"] = view["lists"]
    out["opt_outs"] = view["opt_outs"]
    return out


def change_payload(document: Mapping[str, Any]) -> bytes:
    """One change document as the JSON bytes of its `ConsentChanged`: written by
    pydantic's own serialiser (`pydantic_core.to_json`), which writes datetimes, numbers
    and strings as the model does, in the model's field order."""
    return to_json(
        {
            "schema_version": SCHEMA_VERSION,
            **document,
            "profile": _profile(document["profile"]),
            "state": _state(document["state"]),
        },
        inf_nan_mode="null",  # as the model writes a NaN or infinite property
    )
