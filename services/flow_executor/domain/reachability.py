"""Whether an email or SMS action may reach the profile now (F6, F7). Pure.

The rule itself is shared with the consent service (`shared.domain.reachability`: S6,
C5, C6, C10); the executor applies it to its own read model: the latest consent state
published on `consent-changes`, the suppressions in force published on
`suppression-changes`, and the newest profile data it has seen. A profile the executor
has never heard of is `never_subscribed` and unsuppressed: it may get email (S6) but no
SMS. A profile an erase holds (P2, `domain.erasure`) gets neither.

C17: each decision also names what it rested on (`Grounds`): the consent receipt in
force for the consent that decides the message (`deciding_slot`, as the consent
service's explain chooses it) and the suppressions in force that count for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.flow_executor.domain.erasure import ErasureHold, alert_block, erasure_block
from shared.contracts.flows import EmailStep, InternalAlertStep, SmsStep
from shared.domain.reachability import blocked, opted_out

__all__ = [
    "Grounds",
    "blocked_reason",
    "change_slots",
    "grounds_of",
    "opted_out",
    "step_grounds",
]


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


# --- C17: the facts a decision rests on --------------------------------------------------

SMS_SLOTS = ("sms_marketing", "sms_transactional")


@dataclass(frozen=True)
class Grounds:
    """C17: what an email or SMS step's decision rested on: the consent receipt in force
    for the consent that decided it (None: none known, e.g. never subscribed) and the
    suppressions in force that match the message (none for a message that went)."""

    receipt_id: str | None = None
    suppressions: tuple[Mapping[str, Any], ...] = ()

    def suppression_list(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.suppressions]


def change_slots(
    change_type: str,
    channel: str,
    list_id: str | None,
    scope: str | None,
    consent: Mapping[str, Any] | None,
) -> tuple[str, ...]:
    """The consent slots a `consent-changes` event is about, named as the consent service
    names them (`email`, `list:<id>`, `scope:<scope>`, `sms_marketing`,
    `sms_transactional`, `push`): the receipt it carries is the one in force for them."""
    if channel == "email":
        if change_type in ("Subscribed to List", "Unsubscribed from List") and list_id:
            return (f"list:{list_id}",)
        if scope and scope != "group":
            return (f"scope:{scope}",)
        return ("email",)
    if channel == "push":
        return ("push",)
    if change_type == "Subscribed to SMS Marketing":
        return ("sms_marketing",)
    if change_type == "Subscribed to SMS Transactional":
        return ("sms_transactional",)
    if change_type == "Unsubscribed from SMS":
        stopped = tuple(
            s for s in SMS_SLOTS if ((consent or {}).get(s) or {}).get("status") == "unsubscribed"
        )
        return stopped or SMS_SLOTS
    return SMS_SLOTS  # a changed number (C6): no receipt is in force for the new number


def deciding_slot(
    consent: Mapping[str, Any] | None,
    channel: str,
    list_id: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
) -> str:
    """The consent a message on `channel` (`email`, `sms_marketing`, `sms_transactional`,
    `push`) is decided by, as the consent service's explain names it: for email the
    email consent, unless an opt-out of the sender's client or user or an unsubscribe
    from the message's list decides; for transactional SMS the marketing consent when
    it covers it (C5)."""
    if channel == "email":
        scope = opted_out(consent, client_id, user_id)
        if scope and scope != "group":
            return f"scope:{scope}"
        lists = (consent or {}).get("lists") or {}
        if scope is None and list_id and lists.get(list_id) == "unsubscribed":
            return f"list:{list_id}"
        return "email"
    if channel == "sms_transactional":
        marketing = (consent or {}).get("sms_marketing") or {}
        if marketing.get("status") == "subscribed":
            return "sms_marketing"
    return channel


def matching_suppressions(
    suppressions: Sequence[Mapping[str, Any]], channel: str, list_id: str | None = None
) -> tuple[dict[str, Any], ...]:
    """The suppressions in force that count for a message on `channel` (S6): for email
    the global ones and those of the message's list, for SMS the SMS ones."""
    family = "sms" if channel.startswith("sms") else channel
    if family == "push":
        return ()
    return tuple(
        {
            "channel": s.get("channel") or "email",
            "reason": s.get("reason"),
            "list_id": s.get("list_id"),
            "since": s.get("since"),
        }
        for s in suppressions
        if (s.get("channel") or "email") == family
        and (family == "sms" or s.get("list_id") is None or s.get("list_id") == list_id)
    )


def grounds_of(
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    receipts: Mapping[str, str | None],
    channel: str,
    list_id: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
) -> Grounds:
    """C17: the receipt in force for the deciding consent and the matching suppressions
    of a message on `channel`."""
    slot = deciding_slot(consent, channel, list_id, client_id, user_id)
    return Grounds(receipts.get(slot), matching_suppressions(suppressions, channel, list_id))


def step_grounds(
    step: EmailStep | SmsStep | InternalAlertStep,
    consent: Mapping[str, Any] | None,
    suppressions: Sequence[Mapping[str, Any]],
    receipts: Mapping[str, str | None],
    erasure: ErasureHold | None = None,
) -> Grounds | None:
    """C17: what the reachability decision about `step` rested on; None for an internal
    alert, and for a step an erase holds (the erase decided it, P2)."""
    if isinstance(step, InternalAlertStep):
        return None
    channel = "email" if isinstance(step, EmailStep) else f"sms_{step.purpose}"
    if erasure_block(channel, erasure, consent) is not None:
        return None
    if isinstance(step, EmailStep):
        return grounds_of(
            consent, suppressions, receipts, channel, step.list_id, step.client_id, step.user_id
        )
    return grounds_of(consent, suppressions, receipts, channel)
