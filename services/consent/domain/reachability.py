"""Whether a profile can receive a channel now (C14, S6, C10, C5). Pure.

`suppressions` are the entries of the latest `suppression-changes` for the profile:
`{"channel": "email" | "sms", "reason": ..., "list_id": ... | None}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.consent.domain.model import ProfileConsent

HIDDEN_REASONS = frozenset({"spam_complaint"})  # S3: shown as consent status instead


def blocking(
    suppressions: Sequence[Mapping[str, Any]], channel: str, list_id: str | None = None
) -> list[Mapping[str, Any]]:
    """The suppressions that stop `channel` (global, or for `list_id`)."""
    return [
        s
        for s in suppressions
        if s.get("channel", "email") == channel
        and (s.get("list_id") is None or (list_id is not None and s.get("list_id") == list_id))
    ]


def shown_reasons(suppressions: Sequence[Mapping[str, Any]], channel: str) -> list[dict[str, Any]]:
    """Suppression reasons to show for a channel; spam complaints show as consent (S3)."""
    return [
        {"reason": s.get("reason"), "list_id": s.get("list_id"), "since": s.get("since")}
        for s in suppressions
        if s.get("channel", "email") == channel and s.get("reason") not in HIDDEN_REASONS
    ]


def can_receive(
    state: ProfileConsent,
    suppressions: Sequence[Mapping[str, Any]],
    channel: str,
    list_id: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
) -> bool:
    """S6: email when `subscribed` or `never_subscribed` and not suppressed (nor opted out
    for the sender, C10); SMS and push only when `subscribed` (C5 for purposes)."""
    if channel == "email":
        if state.status("email") not in ("subscribed", "never_subscribed"):
            return False
        if list_id is not None and state.status(f"list:{list_id}") == "unsubscribed":
            return False
        scopes = set(state.opt_outs)
        if client_id and f"client:{client_id}" in scopes:
            return False
        if client_id and user_id and f"user:{client_id}/{user_id}" in scopes:
            return False
        return not blocking(suppressions, "email", list_id)
    if channel == "sms_marketing":
        ok = state.status("sms_marketing") == "subscribed"
        return ok and not blocking(suppressions, "sms")
    if channel == "sms_transactional":
        ok = "subscribed" in (state.status("sms_marketing"), state.status("sms_transactional"))
        return ok and not blocking(suppressions, "sms")
    if channel == "push":
        return state.status("push") == "subscribed"
    raise ValueError(f"unknown channel {channel!r}")
