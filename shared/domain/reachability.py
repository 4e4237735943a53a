"""Whether a message may reach a profile now (S6, C5, C6, C10): the one rule that the
consent service's read side (C14) and the flow executor (F6) both decide by. Pure.

Inputs are what both services hold, in the shape they hold it:

- `consent`: a `ConsentState` as JSON (per channel `status` and, for SMS, the
  `phone_number` the consent belongs to; `lists`; `opt_outs`). None: never heard of,
  which is `never_subscribed` everywhere.
- `suppressions`: the entries in force published on `suppression-changes`
  (`{"channel", "reason", "list_id"}`; no channel means email).
- `contact`: the profile's `email` and `phone_number`, when the caller knows them. A
  message needs an address; SMS consent belongs to the number it was given for (C6).

Each service keeps its own read model (F7); only this rule is shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

Channel = Literal["email", "sms_marketing", "sms_transactional", "push"]
CHANNELS: tuple[Channel, ...] = ("email", "sms_marketing", "sms_transactional", "push")


def _state(consent: Mapping[str, Any] | None, channel: str) -> Mapping[str, Any]:
    return (consent or {}).get(channel) or {}


def _status(consent: Mapping[str, Any] | None, channel: str) -> str:
    return str(_state(consent, channel).get("status") or "never_subscribed")


def opted_out(
    consent: Mapping[str, Any] | None, client_id: str | None, user_id: str | None
) -> str | None:
    """C10: the level of an email opt-out covering a message sent on behalf of
    (client, user): group, then client, then user; None when there is none."""
    scopes = set((consent or {}).get("opt_outs") or [])
    if "group" in scopes or _status(consent, "email") == "unsubscribed":
        return "group"
    if client_id and f"client:{client_id}" in scopes:
        return f"client:{client_id}"
    if client_id and user_id and f"user:{client_id}/{user_id}" in scopes:
        return f"user:{client_id}/{user_id}"
    return None


def blocked(
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    channel: str,
    *,
    list_id: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
    contact: Mapping[str, Any] | None = None,
) -> str | None:
    """Why a message on `channel` may not go now, or None when it may (S6)."""
    if channel == "email":
        return _email(consent, suppressions, list_id, client_id, user_id, contact)
    if channel in ("sms_marketing", "sms_transactional"):
        return _sms(consent, suppressions, channel, contact)
    if channel == "push":
        return None if _status(consent, "push") == "subscribed" else "not subscribed to push"
    raise ValueError(f"unknown channel {channel!r}")


def can_receive(
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    channel: str,
    **where: Any,
) -> bool:
    """S6 `can_receive(channel, list?)`, with the sender's client and user (C10)."""
    return blocked(consent, suppressions, channel, **where) is None


def _email(
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    list_id: str | None,
    client_id: str | None,
    user_id: str | None,
    contact: Mapping[str, Any] | None,
) -> str | None:
    if contact is not None and not contact.get("email"):
        return "no email address"
    if _status(consent, "email") not in ("subscribed", "never_subscribed"):
        return "unsubscribed from email"
    if scope := opted_out(consent, client_id, user_id):
        return f"opted out ({scope})"
    if list_id and ((consent or {}).get("lists") or {}).get(list_id) == "unsubscribed":
        return f"unsubscribed from list {list_id}"
    for s in suppressions:
        if (s.get("channel") or "email") != "email":
            continue
        if s.get("list_id") is None:
            return f"suppressed ({s.get('reason')})"
        if list_id is not None and s.get("list_id") == list_id:
            return f"suppressed from list {list_id} ({s.get('reason')})"
    return None


def _sms(
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    channel: str,
    contact: Mapping[str, Any] | None,
) -> str | None:
    phone = ((contact or {}).get("phone_number") or "").strip()
    if contact is not None and not phone:
        return "no phone number"

    def subscribed(slot: str) -> bool:
        if _status(consent, slot) != "subscribed":
            return False
        number = (_state(consent, slot).get("phone_number") or "").strip()
        return not (phone and number) or number == phone  # C6

    # C5: marketing consent includes transactional, never the other way round.
    purpose = channel.removeprefix("sms_")
    allowed = subscribed("sms_marketing") or (
        purpose == "transactional" and subscribed("sms_transactional")
    )
    if not allowed:
        return f"not subscribed to SMS {purpose}"
    for s in suppressions:
        if s.get("channel") == "sms":
            return f"suppressed ({s.get('reason')})"
    return None
