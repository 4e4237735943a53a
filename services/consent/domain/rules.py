"""Deciding what a consent act does (C4–C11, X3). Pure: state in, outcome out."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.consent.domain.model import (
    SMS_SLOTS,
    Act,
    Confirmation,
    Event,
    HistoryEntry,
    Outcome,
    Policy,
    ProfileConsent,
    Slot,
    Status,
    list_slot,
    normalize_phone,
    scope_slot,
)

OPERATOR_METHODS = frozenset({"manual", "api", "import"})
CLICK_METHODS = frozenset({"link", "preference_center"})

NO_EVIDENCE = (
    "C11: re-subscribe rejected: an operator re-subscribe needs `evidence` "
    "(a reference to the profile's written consent)"
)


def targets(act: Act) -> list[str]:
    """The slots an act writes (C5: unsubscribing either SMS purpose removes both)."""
    if act.channel == "email":
        if act.scope != "group":
            return [scope_slot(act.scope)]
        if act.list_id:
            if act.action == "unsubscribe":
                return [list_slot(act.list_id)]
            return [list_slot(act.list_id), "email"]
        return ["email"]
    if act.channel == "sms":
        if act.action == "unsubscribe":
            return list(SMS_SLOTS)
        return ["sms_marketing" if act.purpose == "marketing" else "sms_transactional"]
    return ["push"]


def _event(slot: str, old: Status, new: Status, act: Act) -> list[Event]:
    if slot == "email":
        if new == "subscribed":
            return [Event("Subscribed to Email Marketing", "email", act.list_id)]
        events = [Event("Unsubscribed from Email Marketing", "email", None, "group")]
        if act.clicked:
            events.append(Event("Clicked and Unsubscribed from Email", "email", None, "group"))
        return events
    if slot.startswith("list:"):
        kind = "Subscribed to List" if new == "subscribed" else "Unsubscribed from List"
        return [Event(kind, "email", slot.removeprefix("list:"))]
    if slot.startswith("scope:"):
        scope = slot.removeprefix("scope:")
        if new == "subscribed":
            return [Event("Subscribed to Email Marketing", "email", None, scope)]
        events = [Event("Unsubscribed from Email Marketing", "email", None, scope)]
        if act.clicked:
            events.append(Event("Clicked and Unsubscribed from Email", "email", None, scope))
        return events
    if slot in SMS_SLOTS:
        if new == "subscribed":
            name = "Marketing" if slot == "sms_marketing" else "Transactional"
            return [Event(f"Subscribed to SMS {name}", "sms")]
        return [Event("Unsubscribed from SMS", "sms")]
    kind = "Subscribed to Mobile Push" if new == "subscribed" else "Unsubscribed from Mobile Push"
    return [Event(kind, "push")]


def _change_phone(state: ProfileConsent, act: Act) -> tuple[ProfileConsent, list[HistoryEntry]]:
    """C6: SMS consent belongs to the number; a new number starts `never_subscribed`."""
    number = normalize_phone(act.phone_number)
    if number is None or number == state.phone_number:
        return state, []
    if state.phone_version is not None and act.version < state.phone_version:
        return state, []  # an older act's number does not replace a newer one (X3)
    if state.phone_number is None:
        return replace(state, phone_number=number, phone_version=act.version), []
    slots = dict(state.slots)
    history = []
    for key in SMS_SLOTS:
        slots[key] = Slot(phone_number=number, version=act.version)
        history.append(
            HistoryEntry(
                key,
                "phone_changed",
                "phone_changed",
                "never_subscribed",
                None,
                act.act_at,
                act.method,
                act.act_id,
                phone_number=number,
            )
        )
    return ProfileConsent(slots, number, act.version), history


def _older(version: tuple[datetime, str] | None, act: Act) -> bool:
    """X3: the slot was last written by an act ordered before `act` (or never)."""
    return version is None or version < act.version


def decide(state: ProfileConsent, act: Act, policy: Policy, now: datetime) -> Outcome:
    """What `act` does to `state`: the new state, C9 events, history rows, a confirmation
    to send (C8, C11) or a rejection (C11)."""
    if act.action == "resubscribe" and not (act.evidence or "").strip():
        return Outcome(state, rejection=NO_EVIDENCE)
    if act.channel != "email" and (act.scope != "group" or act.list_id):
        return Outcome(state, rejection="lists and scoped opt-outs apply to email only")

    state, history = _change_phone(state, act)
    if act.channel == "sms" and state.phone_number is None:
        return Outcome(
            state,
            history=tuple(history),
            rejection="C6: SMS consent needs the profile's phone_number",
        )

    keys = targets(act)
    fresh = [
        k for k in keys if state.slot(k).version is None or state.slot(k).version < act.version
    ]
    stale = [k for k in keys if k not in fresh and state.slot(k).version != act.version]
    for key in stale:  # X3: kept in history, does not change the state
        history.append(_entry(key, act, "stale", state.slot(key).status, act.act_at, state))
    if not fresh:
        return Outcome(state, history=tuple(history))

    stamp = act.act_at if act.historical_import else now  # C4
    if act.action == "unsubscribe":
        new_status: Status = "unsubscribed"
    else:
        new_status = "subscribed"
        gate = _subscribe_gate(state, act, policy, fresh)
        if isinstance(gate, Outcome):
            return replace(gate, history=tuple(history) + gate.history)
        if gate is None:  # nothing to lift or already subscribed: only the version moves
            fresh = [k for k in fresh if not k.startswith("scope:")]

    events: list[Event] = []
    for key in fresh:
        old = state.slot(key)
        if key.startswith("scope:") and new_status == "subscribed" and old.status != "unsubscribed":
            continue  # C10: nothing to lift at this level
        changed = old.status != new_status or (
            key == "email"
            and new_status == "subscribed"
            and policy.manually_suppressed
            and act.action != "unsubscribe"
        )
        if not changed:
            state = state.with_slot(key, replace(old, version=act.version))
            continue
        phone = state.phone_number if key in SMS_SLOTS else None
        state = state.with_slot(key, Slot(new_status, stamp, act.method, phone, act.version))
        history.append(_entry(key, act, "applied", new_status, stamp, state))
        for event in _event(key, old.status, new_status, act):
            if event not in events:
                events.append(event)
    return Outcome(state, tuple(events), tuple(history))


def _subscribe_gate(
    state: ProfileConsent, act: Act, policy: Policy, keys: list[str]
) -> Outcome | bool | None:
    """True: apply at once. An Outcome: stop there (pending confirmation or rejection).
    None: nothing would change."""
    statuses = {state.slot(k).status for k in keys}
    scoped = all(k.startswith("scope:") for k in keys)
    if scoped and "unsubscribed" not in statuses:
        return None
    if statuses == {"subscribed"} and not (policy.manually_suppressed and "email" in keys):
        return None  # repeating a subscribe changes nothing (C9)
    if act.confirmed or act.historical_import or act.action == "resubscribe":
        return True  # C8 click, C4 import, C11 operator with evidence
    opted_out = "unsubscribed" in statuses
    if act.channel == "email":
        if policy.email_double_opt_in or opted_out:
            entry = _entry(
                keys[0], act, "pending_confirmation", state.slot(keys[0]).status, act.act_at, state
            )
            return Outcome(
                state,
                history=(entry,),
                confirmation=Confirmation("email", act.list_id, act.scope),
            )
        return True
    if opted_out and act.method in OPERATOR_METHODS:
        return Outcome(
            state,
            rejection=(
                f"C11: {act.channel} consent was withdrawn; only the profile can opt in again "
                "(keyword, form) or an operator re-subscribes with evidence"
            ),
        )
    return True


def _entry(
    key: str, act: Act, result: str, status: Status, at: datetime | None, state: ProfileConsent
) -> HistoryEntry:
    return HistoryEntry(
        slot=key,
        action=act.action,
        result=result,  # type: ignore[arg-type]
        status=status,
        consented_at=at,
        act_at=act.act_at,
        method=act.method,
        act_id=act.act_id,
        list_id=act.list_id,
        scope=act.scope,
        evidence=act.evidence,
        phone_number=state.phone_number if key in SMS_SLOTS else None,
    )
