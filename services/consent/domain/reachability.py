"""The consent read side's view of reachability (C14). Pure.

`can_receive` is the shared rule (`shared.domain.reachability`, S6 + C10) applied to the
consent service's own state; `shown_reasons` is what the read side lists as suppression
reasons. `suppressions` are the entries of the latest `suppression-changes` for the
profile: `{"channel": "email" | "sms", "reason": ..., "list_id": ... | None}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.consent.domain.model import ProfileConsent
from shared.domain import reachability

HIDDEN_REASONS = frozenset({"spam_complaint"})  # S3: shown as consent status instead


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
    contact: Mapping[str, Any] | None = None,
) -> bool:
    """S6 for this profile: the shared rule over the consent service's state."""
    return reachability.can_receive(
        state.view(),
        suppressions,
        channel,
        list_id=list_id,
        client_id=client_id,
        user_id=user_id,
        contact=contact,
    )
