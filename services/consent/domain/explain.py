"""Explain (C17, consent side): may a message go to a profile now on a channel, and on
which facts. Pure.

The answer is the read side's `can_receive` (C14: the shared rule, S6 with C10 scopes and
the list, over the consent service's state and its suppression read model, and P2's
erase hold), with the facts it rests on: the receipt in force for each consent that
counts (its id), the suppressions with reason and time, the scoped opt-outs covering the
sender, and the erase hold. Quiet hours and smart sending are the flow executor's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.consent.domain.model import ProfileConsent, list_slot, scope_slot
from services.consent.domain.reachability import can_receive
from services.consent.domain.receipts import Receipt, in_force
from shared.domain import reachability

ERASED = "erased (P2): held until the person consents again with evidence"


def channel_slot(channel: str, purpose: str = "marketing") -> str:
    """The consent slot a message on `channel` is decided by (`can_receive`'s name)."""
    if channel == "sms":
        return f"sms_{purpose}"
    return channel


def _slots(
    state: ProfileConsent,
    slot: str,
    list_id: str | None,
    client_id: str | None,
    user_id: str | None,
) -> list[str]:
    """The consents that count for the message, the deciding one first."""
    if slot == "email":
        out = ["email"]
        if list_id:
            out.append(list_slot(list_id))
        if client_id:
            out.append(scope_slot(f"client:{client_id}"))
            if user_id:
                out.append(scope_slot(f"user:{client_id}/{user_id}"))
        return out
    if slot == "sms_transactional" and state.status("sms_marketing") == "subscribed":
        return ["sms_marketing", "sms_transactional"]  # C5: marketing covers it
    return [slot]


def _receipt_fact(r: Receipt | None) -> dict[str, Any] | None:
    if r is None:
        return None
    body = r.body
    return {
        "receipt_id": r.receipt_id,
        "sequence": r.sequence,
        "act_id": body.get("act_id"),
        "status": body.get("status"),
        "method": body.get("method"),
        "collected_at": body.get("collected_at"),
        "notice": body.get("notice"),
    }


def _suppressions(
    suppressions: Sequence[Mapping[str, Any]], channel: str, list_id: str | None
) -> list[dict[str, Any]]:
    """The suppressions that count for a message on `channel` (for `list_id`)."""
    return [
        {"reason": s.get("reason"), "list_id": s.get("list_id"), "since": s.get("since")}
        for s in suppressions
        if channel != "push"
        and (s.get("channel") or "email") == channel
        and (s.get("list_id") is None or s.get("list_id") == list_id)
    ]


def explain(
    state: ProfileConsent,
    suppressions: Sequence[Mapping[str, Any]],
    receipts: Sequence[Receipt],
    channel: str,
    purpose: str = "marketing",
    list_id: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
    erased: bool = False,
) -> dict[str, Any]:
    """C17: the answer and its facts. `can_receive` equals the read side's (C14)."""
    slot = channel_slot(channel, purpose)
    allowed = not erased and can_receive(state, suppressions, slot, list_id, client_id, user_id)
    if erased:
        blocked: str | None = ERASED
    else:
        blocked = reachability.blocked(
            state.view(),
            suppressions,
            slot,
            list_id=list_id,
            client_id=client_id,
            user_id=user_id,
        )
    consents = []
    for key in _slots(state, slot, list_id, client_id, user_id):
        status = state.status(key)
        consents.append(
            {
                "slot": key,
                "status": status,
                "receipt": _receipt_fact(in_force(receipts, key, status)),
            }
        )
    sups = _suppressions(suppressions, channel, list_id)
    scope = reachability.opted_out(state.view(), client_id, user_id) if channel == "email" else None
    deciding = consents[0]
    if scope and scope != "group":
        deciding = next(c for c in consents if c["slot"] == scope_slot(scope))
    elif list_id and state.status(list_slot(list_id)) == "unsubscribed" and scope is None:
        deciding = next(c for c in consents if c["slot"] == list_slot(list_id))
    return {
        "channel": channel,
        "purpose": purpose if channel == "sms" else None,
        "slot": slot,
        "list_id": list_id,
        "client_id": client_id,
        "user_id": user_id,
        "can_receive": allowed,
        "blocked": None if allowed else blocked,
        "receipt_in_force": deciding["receipt"],
        "facts": {
            "consents": consents,
            "suppressions": sups,
            "opt_outs": [scope] if scope else [],
            "erased_hold": erased,
        },
    }
