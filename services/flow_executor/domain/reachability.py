"""Whether an email or SMS action may reach the profile now (F6, F7). Pure.

The rule itself is shared with the consent service (`shared.domain.reachability`: S6,
C5, C6, C10); the executor applies it to its own read model: the latest consent state
published on `consent-changes`, the suppressions in force published on
`suppression-changes`, and the newest profile data it has seen. A profile the executor
has never heard of is `never_subscribed` and unsuppressed: it may get email (S6) but no
SMS. A profile an erase holds (P2, `domain.erasure`) gets neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.flow_executor.domain.erasure import ErasureHold, alert_block, erasure_block
from shared.contracts.flows import EmailStep, InternalAlertStep, SmsStep
from shared.domain.reachability import blocked, opted_out

__all__ = ["blocked_reason", "opted_out"]


def blocked_reason(
    step: EmailStep | SmsStep | InternalAlertStep,
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    profile: Mapping[str, Any] | None = None,
    erasure: ErasureHold | None = None,
) -> str | None:
    """Why `step` may not go to the profile right now, or None when it may. An erase
    that holds the profile (P2) comes first: it says the most about why. An internal
    alert is held by that erase only (it goes to staff, not to the profile)."""
    if isinstance(step, InternalAlertStep):
        held = alert_block(erasure, consent)
        return None if held is None else f"Skipped: {held}"
    channel = "email" if isinstance(step, EmailStep) else f"sms_{step.purpose}"
    if (held := erasure_block(channel, erasure, consent)) is not None:
        return f"Skipped: {held}"
    if isinstance(step, EmailStep):
        reason = blocked(
            consent,
            suppressions,
            "email",
            list_id=step.list_id,
            client_id=step.client_id,
            user_id=step.user_id,
            contact=profile or {},
        )
    else:
        reason = blocked(consent, suppressions, channel, contact=profile or {})
    return None if reason is None else f"Skipped: {reason}"
