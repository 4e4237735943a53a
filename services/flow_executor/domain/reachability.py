"""Whether an email or SMS action may reach the profile now (F6, F7, S6, C5, C6, C10). Pure.

Decided from the executor's own read model: the latest consent state published on
`consent-changes` (`ConsentState` as JSON) and the suppressions in force published on
`suppression-changes`. A profile the executor has never heard of is `never_subscribed`
and unsuppressed: it may get email (S6) but no SMS.

A suppression is a mapping with `reason`, optional `list_id` and optional `channel`
(email when absent). A suppression with a `list_id` blocks only email for that list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.contracts.flows import EmailStep, SmsStep


def _channel(consent: Mapping[str, Any] | None, channel: str) -> Mapping[str, Any]:
    return (consent or {}).get(channel) or {}


def _status(consent: Mapping[str, Any] | None, channel: str) -> str:
    return str(_channel(consent, channel).get("status") or "never_subscribed")


def opted_out(
    consent: Mapping[str, Any] | None, client_id: str | None, user_id: str | None
) -> str | None:
    """The scope of an email opt-out that covers a message sent on behalf of
    (client, user), or None (C10: user, client or group level)."""
    scopes = set((consent or {}).get("opt_outs") or [])
    if "group" in scopes:
        return "group"
    if client_id and f"client:{client_id}" in scopes:
        return f"client:{client_id}"
    if client_id and user_id and f"user:{client_id}/{user_id}" in scopes:
        return f"user:{client_id}/{user_id}"
    return None


def _email_blocked(
    step: EmailStep,
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    profile: Mapping[str, Any],
) -> str | None:
    if not profile.get("email"):
        return "Skipped: no email address"
    if _status(consent, "email") == "unsubscribed":
        return "Skipped: unsubscribed from email"
    if scope := opted_out(consent, step.client_id, step.user_id):
        return f"Skipped: opted out ({scope})"
    if step.list_id and (consent or {}).get("lists", {}).get(step.list_id) == "unsubscribed":
        return f"Skipped: unsubscribed from list {step.list_id}"
    for s in suppressions:
        if (s.get("channel") or "email") != "email":
            continue
        if s.get("list_id") is None:
            return f"Skipped: suppressed ({s.get('reason')})"
        if s.get("list_id") == step.list_id:
            return f"Skipped: suppressed from list {step.list_id} ({s.get('reason')})"
    return None


def _sms_blocked(
    step: SmsStep,
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    profile: Mapping[str, Any],
) -> str | None:
    phone = (profile.get("phone_number") or "").strip()
    if not phone:
        return "Skipped: no phone number"

    def subscribed(channel: str) -> bool:
        state = _channel(consent, channel)
        if _status(consent, channel) != "subscribed":
            return False
        # C6: SMS consent belongs to the number it was given for.
        number = (state.get("phone_number") or "").strip()
        return not number or number == phone

    # C5: marketing consent includes transactional, never the other way round.
    allowed = subscribed("sms_marketing") or (
        step.purpose == "transactional" and subscribed("sms_transactional")
    )
    if not allowed:
        return f"Skipped: not subscribed to SMS {step.purpose}"
    for s in suppressions:
        if s.get("channel") == "sms":
            return f"Skipped: suppressed ({s.get('reason')})"
    return None


def blocked_reason(
    step: EmailStep | SmsStep,
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    profile: Mapping[str, Any] | None = None,
) -> str | None:
    """Why `step` may not go to the profile right now, or None when it may."""
    profile = profile or {}
    if isinstance(step, EmailStep):
        return _email_blocked(step, consent, suppressions, profile)
    return _sms_blocked(step, consent, suppressions, profile)
