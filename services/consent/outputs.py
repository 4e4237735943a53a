"""The `consent-changes` payloads (C9) as the bytes the outbox publishes, written straight
from the decided outcome.

Validating each change as a `ConsentChanged` model and dumping it again cost more than
deciding the act itself (a nested model per channel). The documents are made only of
values that were validated when they came in (the command's profile, the domain's
state), so they are written as JSON directly, in the shape the model would write: every
field of the model in its order, the profile with only the fields of `Profile`, and the
`schema_version` of every nested message, by the serialiser the model itself uses.
`tests/unit/consent/test_change_payloads.py` holds them equal, byte for byte, to the
general writing (documents validated as the model, `tests/unit/consent/general_payloads.py`)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.consent.domain.model import (
    CHANNEL_SLOTS,
    NEVER_SLOT,
    SMS_SLOTS,
    Act,
    Event,
    Outcome,
    ProfileConsent,
    Slot,
)
from shared.contracts.base import SCHEMA_VERSION, Profile, json_bytes

PROFILE_FIELDS = tuple(Profile.model_fields)
_CHANNELS = ("email", "sms_marketing", "sms_transactional", "push")


def short_digest(*parts: str) -> str:
    """A short digest of `parts`, distinct for distinct part lists (X2): `%` and the
    separator are escaped in each part (parts without them digest as they always did,
    so ids of acts already handled stay the same)."""
    escaped = (p.replace("%", "%25").replace("\x1f", "%1F") for p in parts)
    return hashlib.sha256("\x1f".join(escaped).encode()).hexdigest()[:24]


@functools.lru_cache(maxsize=4096)
def _event_digest(kind: str, list_id: str | None, scope: str | None) -> str:
    """`short_digest` of an event: a few kinds, lists and scopes recur on every act."""
    return short_digest(kind, list_id or "", scope or "")


def change_id(prefix: str, event: Event) -> str:
    """X2: the id of a change, one per account, profile, act and event, unique by
    construction (two profiles that share a number each get their own change, C6):
    `derived_id(account, profile, act, digest)`, where `prefix` is
    `derived_id(account, profile, act)` (the digest is hex: nothing to escape)."""
    return f"{prefix}:{_event_digest(event.type, event.list_id, event.scope)}"


def _profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {f: profile.get(f) for f in PROFILE_FIELDS}
    out["properties"] = out["properties"] or {}
    return out


def _channel(slot: Slot, sms: bool) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "status": slot.status,
        "consented_at": slot.consented_at,
        "method": slot.method,
        "phone_number": slot.phone_number if sms else None,
    }


_UNTOUCHED = {key: _channel(NEVER_SLOT, key in SMS_SLOTS) for key in CHANNEL_SLOTS}
"""A channel no act has touched, as every payload writes it (`json_bytes` only reads it)."""


def state_payload(state: ProfileConsent) -> dict[str, Any]:
    """The payload's `state`, `state.view()` in the payload's shape built in one pass,
    written once per outcome for all of its changes. Lists and scoped opt-outs are only
    looked for when the profile has a slot besides the channels."""
    slots = state.slots
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for key in CHANNEL_SLOTS:
        slot = slots.get(key)
        out[key] = _UNTOUCHED[key] if slot is None else _channel(slot, key in SMS_SLOTS)
    if slots.keys() <= _UNTOUCHED.keys():  # the channels only
        out["lists"] = {}
        out["opt_outs"] = ["group"] if out["email"]["status"] == "unsubscribed" else []
    else:
        out["lists"] = state.lists
        out["opt_outs"] = state.opt_outs
    return out


def change_payloads(
    prefix: str,
    account_id: str,
    profile_id: str,
    profile: Mapping[str, Any],
    act: Act,
    outcome: Outcome,
    now: datetime,
    receipt_id: str | None = None,
) -> list[bytes]:
    """The payload of each change of one outcome, without building a document per
    change: the profile and the state are written once for all
    of its changes, the ids from `prefix` (`derived_id(account, profile, act)`).
    `tests/unit/consent/test_change_payloads.py` holds them equal to the general
    writing, byte for byte."""
    if not outcome.events:
        return []
    shown = _profile(profile)
    state = state_payload(outcome.state)
    stamp = act.act_at if act.historical_import else now
    return [
        json_bytes(
            {
                "schema_version": SCHEMA_VERSION,
                "type": event.type,
                "change_id": change_id(prefix, event),
                "account_id": account_id,
                "profile_id": profile_id,
                "profile": shown,
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
        )
        for event in outcome.events
    ]
