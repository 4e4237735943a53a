"""Whether an email or SMS action may reach the profile now (F6, F7, S6, C10). Pure.

Decided from the executor's own read model: the latest consent state published on
`consent-changes` and the suppressions published on `suppression-changes`. A profile the
executor has never heard of is `never_subscribed` and unsuppressed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.contracts.flows import EmailStep, SmsStep


def _status(consent: Mapping[str, Any] | None, channel: str) -> str:
    if not consent:
        return "never_subscribed"
    return str(consent.get(channel, {}).get("status", "never_subscribed"))


def opted_out(consent: Mapping[str, Any] | None, client_id: str | None, user_id: str | None) -> str | None:
    """The scope of an email opt-out that covers a message sent on behalf of
    (client, user), or None (C10: user, client or group level)."""
    scopes = set((consent or {}).get("opt_outs", []))
    if "group" in scopes:
        return "group"
    if client_id and f"client:{client_id}" in scopes:
        return f"client:{client_id}"
    if client_id and user_id and f"user:{client_id}/{user_id}" in scopes:
        return f"user:{client_id}/{user_id}"
    return None


def blocked_reason(
    step: EmailStep | SmsStep,
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
) -> str | None:
    """Why `step` may not go to the profile, or None when it may."""
    if isinstance(step, EmailStep):
        status = _status(consent, "email")
        if status == "unsubscribed":
            return "Skipped: unsubscribed from email"
        if scope := opted_out(consent, step.client_id, step.user_id):
            return f"Skipped: opted out ({scope})"
        for s in suppressions:
            if s.get("channel", "email") != "email":
                continue
            if s.get("list_id") is None or s.get("list_id") == step.list_id:
                return f"Skipped: suppressed ({s.get('reason')})"
        return None
    marketing = _status(consent, "sms_marketing")
    transactional = _status(consent, "sms_transactional")
    allowed = marketing == "subscribed" or (
        step.purpose == "transactional" and transactional == "subscribed"
    )
    if not allowed:
        return f"Skipped: not subscribed to SMS {step.purpose}"
    if any(s.get("channel") == "sms" for s in suppressions):
        return "Skipped: suppressed (sms)"
    return None
