"""Deciding what a consent act does (C4–C11, X3, X3a). Pure: state in, outcome out.

`decide` is the entry point. It dedupes the act (X2), clamps a future time (X3), and then:

- an act newer than every act of its channel is decided on the current state by `step`;
- an act that arrives late is judged by folding the whole act log in time order (`fold`).
  If that leaves every status as it is, the act is *stale*: kept in history, no change, no
  event. If it changes something (a late opt-out that a newer act could not have
  reversed, say), the folded state is taken and the differences are published.

Either way the state equals `fold(log)` as far as anyone can see, so arrival order never
changes the final state, and an act always moves its channel as a whole.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from services.consent.domain.model import (
    CLOCK_SKEW,
    SMS_SLOTS,
    Act,
    ActLog,
    Confirmation,
    Event,
    HistoryEntry,
    Logged,
    Outcome,
    Policy,
    ProfileConsent,
    Slot,
    Status,
    list_slot,
    normalize_phone,
    scope_slot,
)

NO_EVIDENCE = (
    "C11: re-subscribe rejected: an operator re-subscribe needs `evidence` "
    "(a reference to the profile's written consent)"
)
SCOPED_LIST = (
    "X3a: a list subscription cannot be scoped to a client or user; "
    "send the list act at group scope, or the scoped opt-out without list_id"
)
NOT_EMAIL_SCOPE = "X3a: lists and scoped opt-outs apply to email only"
NEEDS_PHONE = "C6: SMS consent needs the profile's phone_number"


def withdrawn(channel: str) -> str:
    return (
        f"C11: {channel} consent was withdrawn; only the profile's own act (confirmation "
        "click, START keyword) or an act with `evidence` re-subscribes"
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


def clicked(act: Act) -> bool:
    """C9: the profile used an unsubscribe link itself (ours, or one a producer reports
    with `method: link`)."""
    return act.action == "unsubscribe" and (act.clicked or act.method == "link")


PHONE_CHANGED = Event("Changed SMS Phone Number", "sms")
"""C6, F7: the profile's SMS consent now belongs to another number (and so starts
`never_subscribed`). Not a C9 transition, but the flow executor keeps its read model
from `consent-changes`: without it, a number that changes back to an earlier one would
look subscribed again there while the consent service says it is not. Published only
when the act publishes nothing else (every event carries the full state)."""


def _only_if_alone(events: list[Event]) -> tuple[Event, ...]:
    others = [e for e in events if e != PHONE_CHANGED]
    return tuple(others or events)


def _event(slot: str, new: Status, act: Act) -> tuple[Event, ...]:
    """The C9 events of `slot` becoming `new` by `act`. They depend on the act only
    through its list (an email subscribe) and whether the profile clicked, so they are
    made once per combination (`_events`) and shared: an event is frozen, and every act
    that changes consent asks for them."""
    return _events(
        slot, new, act.list_id if slot == "email" and new == "subscribed" else None, clicked(act)
    )


@functools.lru_cache(maxsize=4096)
def _events(slot: str, new: Status, list_id: str | None, was_clicked: bool) -> tuple[Event, ...]:
    return tuple(_make_events(slot, new, list_id, was_clicked))


def _make_events(slot: str, new: Status, list_id: str | None, was_clicked: bool) -> list[Event]:
    if new == "never_subscribed":
        return [PHONE_CHANGED] if slot in SMS_SLOTS else []
    if slot == "email" or slot.startswith("scope:"):
        scope = "group" if slot == "email" else slot.removeprefix("scope:")
        if new == "subscribed":
            return [
                Event(
                    "Subscribed to Email Marketing",
                    "email",
                    list_id if slot == "email" else None,
                    None if slot == "email" else scope,
                )
            ]
        events = [Event("Unsubscribed from Email Marketing", "email", None, scope)]
        if was_clicked:
            events.append(Event("Clicked and Unsubscribed from Email", "email", None, scope))
        return events
    if slot.startswith("list:"):
        kind = "Subscribed to List" if new == "subscribed" else "Unsubscribed from List"
        return [Event(kind, "email", slot.removeprefix("list:"))]
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
    left = set(state.opted_out_numbers)
    if state.phone_number is None:
        if number not in left:
            return replace(state, phone_number=number, phone_version=act.version), []
    elif state.status("sms_marketing") == "unsubscribed":
        left.add(state.phone_number)
    else:
        left.discard(state.phone_number)
    # C6: a new number starts `never_subscribed`; C11: a number that opted out and comes
    # back is still opted out (an opt-out is lifted only by the person or evidence).
    status: Status = "unsubscribed" if number in left else "never_subscribed"
    slots = dict(state.slots)
    history = []
    for key in SMS_SLOTS:
        slots[key] = Slot(status=status, phone_number=number, version=act.version)
        history.append(_entry(key, act, "phone_changed", status, None, number))
    return (
        replace(
            state,
            slots=slots,
            phone_number=number,
            phone_version=act.version,
            opted_out_numbers=frozenset(left),
        ),
        history,
    )


def invalid(act: Act) -> str | None:
    """X3a, C11: an act that cannot be applied exactly as asked, whatever the state."""
    if act.action == "resubscribe" and not act.has_evidence:
        return NO_EVIDENCE
    if act.channel != "email" and (act.scope != "group" or act.list_id):
        return NOT_EMAIL_SCOPE
    if act.list_id and act.scope != "group":
        return SCOPED_LIST
    return None


def effective(act: Act, now: datetime) -> Act:
    """X3: an act dated later than its receipt (plus clock skew) takes the receipt time;
    the claimed time is kept for the history."""
    latest = now + CLOCK_SKEW
    if act.act_at > latest:
        return replace(act, act_at=now, claimed_at=act.act_at)
    return act


def step(state: ProfileConsent, act: Act, policy: Policy, now: datetime) -> Outcome:
    """What `act` does to `state` when nothing newer has been applied to its channel: the
    new state, C9 events, history rows, a confirmation to send (C8) or a rejection."""
    if (reason := invalid(act)) is not None:
        return _rejected(state, act, reason)
    if act.number_only and state.phone_number not in (None, normalize_phone(act.phone_number)):
        return Outcome(_for_another_number(state, act))
    after_phone, history = _change_phone(state, act)
    if act.channel == "sms" and after_phone.phone_number is None:
        return _rejected(state, act, NEEDS_PHONE)
    events: list[Event] = [PHONE_CHANGED] if history else []
    keys = targets(act)
    stamp = act.act_at if act.historical_import else now  # C4
    if act.action == "unsubscribe":
        new_status: Status = "unsubscribed"
    else:
        new_status = "subscribed"
        gate = _gate(after_phone, act, policy, keys)
        if gate == "noop":
            return Outcome(_touch(after_phone, keys, act), tuple(events), tuple(history))
        if gate == "confirm":
            entry = _entry(keys[0], act, "pending_confirmation", after_phone.status(keys[0]))
            return Outcome(
                after_phone,
                tuple(events),
                history=(*history, entry),
                confirmation=Confirmation("email", act.list_id, act.scope),
            )
        if gate != "apply":
            return _rejected(state, act, gate)
    state = after_phone
    for key in keys:
        old = state.slot(key)
        if key.startswith("scope:") and new_status == "subscribed" and old.status != "unsubscribed":
            continue  # C10: nothing to lift at this level
        changed = old.status != new_status or (
            key == "email" and new_status == "subscribed" and policy.relifts(act)
        )
        if not changed:
            state = state.with_slot(key, replace(old, version=act.version))
            continue
        phone = state.phone_number if key in SMS_SLOTS else None
        state = state.with_slot(key, Slot(new_status, stamp, act.method, phone, act.version))
        history.append(_entry(key, act, "applied", new_status, stamp, phone))
        for event in _event(key, new_status, act):
            if event not in events:
                events.append(event)
    return Outcome(state, _only_if_alone(events), tuple(history))


def _for_another_number(state: ProfileConsent, act: Act) -> ProfileConsent:
    """C6: a number's own act for a profile that has another number at that time (a
    profile without a number takes it, as from any act that carries one): an opt-out is
    remembered for the number, so the profile comes back to it unsubscribed
    (`_change_phone`); a START from the number lifts that memory."""
    number = normalize_phone(act.phone_number)
    if number is None:
        return state
    left = set(state.opted_out_numbers)
    if act.action == "unsubscribe":
        left.add(number)
    else:
        left.discard(number)
    return replace(state, opted_out_numbers=frozenset(left))


def _touch(state: ProfileConsent, keys: list[str], act: Act) -> ProfileConsent:
    for key in keys:
        state = state.with_slot(key, replace(state.slot(key), version=act.version))
    return state


def _gate(state: ProfileConsent, act: Act, policy: Policy, keys: list[str]) -> str:
    """A subscribe: "apply", "noop" (nothing to change), "confirm" (C8 mail) or the
    reason it is rejected (C11)."""
    statuses = {state.status(k) for k in keys}
    if all(k.startswith("scope:") for k in keys) and "unsubscribed" not in statuses:
        return "noop"
    if statuses == {"subscribed"} and not (policy.relifts(act) and "email" in keys):
        return "noop"  # repeating a subscribe changes nothing (C9)
    own = act.confirmed or act.has_evidence
    opted_out = "unsubscribed" in statuses
    if opted_out and not own:
        # C11: back in only by the profile's own act or with evidence. For email the
        # profile can be asked (a confirmation mail whose click is its own act).
        if act.channel == "email" and not act.historical_import:
            return "confirm"
        return withdrawn(act.channel)
    evidence_applies = act.has_evidence and (opted_out or act.action == "resubscribe")
    if act.confirmed or evidence_applies or act.historical_import:
        return "apply"  # C8 click, C11 evidence after an opt-out or resubscribe, C4 import
    if act.channel == "email" and policy.email_double_opt_in:
        return "confirm"
    return "apply"


def _rejected(state: ProfileConsent, act: Act, reason: str) -> Outcome:
    slot = targets(act)[0] if act.channel in ("email", "sms", "push") else act.channel
    entry = _entry(slot, act, "rejected", state.status(slot), None, reason=reason)
    return Outcome(state, history=(entry,), rejection=reason)


def _entry(
    key: str,
    act: Act,
    result: str,
    status: Status,
    at: datetime | None = None,
    phone: str | None = None,
    reason: str | None = None,
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
        phone_number=phone if key in SMS_SLOTS else None,
        actor=act.actor,
        claimed_at=act.claimed_at,
        reason=reason,
    )


def fold(log: Iterable[Logged]) -> tuple[ProfileConsent, dict[str, Outcome]]:
    """The state that the acts of `log` make in time order, and each act's outcome."""
    state = ProfileConsent()
    outcomes: dict[str, Outcome] = {}
    for entry in sorted(log, key=lambda e: e.act.version):
        out = step(state, entry.act, entry.policy, entry.received_at)
        outcomes[entry.act.act_id] = out
        if out.rejection is None:
            state = out.state
    return state, outcomes


def decide(state: ProfileConsent, act: Act, policy: Policy, now: datetime) -> Outcome:
    """What `act`, received `now`, does to `state` (X2, X3): see the module docstring.
    The first act of a profile nothing has touched yet (most acts: a new profile's
    subscribe) is decided by `_first_act`, which gives what `decide_in_order` gives."""
    if _untouched(state):
        act = effective(act, now)
        fresh = _first_act(act, policy, now)
        if fresh is not None:
            return fresh
        return _decide(state, act, policy, now)
    return decide_in_order(state, act, policy, now)


def _untouched(state: ProfileConsent) -> bool:
    """No act has touched the profile: no slot, no logged act, no number (cheap checks:
    comparing with an empty state would read a long act log)."""
    return (
        not state.slots
        and not len(state.log)
        and state.phone_number is None
        and state.phone_version is None
        and not state.opted_out_numbers
    )


def _first_act(act: Act, policy: Policy, now: datetime) -> Outcome | None:
    """`step` and `decide` for the first act on an untouched profile, built directly: the
    common case (a valid subscribe that applies at once, or an opt-out, of a channel, a
    list or push) without the intermediate states. None for every other case (rejected,
    pending confirmation, scoped, nothing to change), which the general path decides.
    `tests/unit/consent/test_first_act.py` holds the two equal for every act."""
    if invalid(act) is not None or act.scope != "group":
        return None
    number = normalize_phone(act.phone_number)
    if act.channel == "sms" and number is None:
        return None
    if act.action == "unsubscribe":
        status: Status = "unsubscribed"
    elif (
        act.confirmed or act.historical_import or (act.action == "resubscribe" and act.has_evidence)
    ):
        status = "subscribed"
    elif act.channel == "email" and policy.email_double_opt_in:
        return None  # C8: a confirmation to ask for
    else:
        status = "subscribed"
    version = act.version
    stamp = act.act_at if act.historical_import else now  # C4
    slots: dict[str, Slot] = {}
    history: list[HistoryEntry] = []
    # Each slot's events in order, once each; for one slot (most acts) the tuple `_event`
    # made, shared.
    events: tuple[Event, ...] = ()
    for key in targets(act):
        phone = number if key in SMS_SLOTS else None
        slots[key] = Slot(status, stamp, act.method, phone, version)
        history.append(_entry(key, act, "applied", status, stamp, phone))
        found = _event(key, status, act)
        events = events + tuple(e for e in found if e not in events) if events else found
    state = ProfileConsent(
        slots, number, version if number is not None else None, ActLog([Logged(act, now, policy)])
    )
    return Outcome(state, events, tuple(history))


def decide_in_order(state: ProfileConsent, act: Act, policy: Policy, now: datetime) -> Outcome:
    """`decide` without the shortcut for an untouched profile: the general path."""
    if state.log.has_act(act.act_id):
        return Outcome(state)  # X2: the same act again changes nothing
    return _decide(state, effective(act, now), policy, now)


def _decide(state: ProfileConsent, act: Act, policy: Policy, now: datetime) -> Outcome:
    """`decide` of an act already made effective (X3) and not logged before (X2)."""
    logged = Logged(act, now, policy)
    # C6: SMS consent follows the phone number, which any act may carry; such an act is
    # late when older than any act of the profile.
    newest = state.newest_version(None if act.channel == "sms" or act.phone_number else act.channel)
    if newest is None or newest < act.version:
        out = step(state, act, policy, now)
        kept = out.state if out.rejection is None else state
        return replace(out, state=replace(kept, log=state.log.plus(logged)))
    log = state.log.plus(logged)
    if state.slots and not state.log:
        # A state kept before the act log existed cannot be refolded: older acts are stale.
        return _stale(state, act, log)
    folded, outcomes = fold(log)
    own = outcomes[act.act_id]
    if own.rejection is not None:
        return replace(own, state=replace(state, log=log))
    # X3: only an act of its own channel makes an act stale. One that is the newest of
    # its channel but older than another channel's act (it carries a phone number, or it
    # is an SMS act) is folded for the phone number's sake, and keeps its own outcome:
    # its confirmation mail (C8) and its history.
    fresh = _newest_of_channel(state, act)
    if folded.signature() == state.signature():
        if fresh:
            return replace(own, state=replace(folded, log=log), events=())
        # Stale for the slots, but a late opt-out of a number the profile has since left
        # is still remembered for that number (C6, C11).
        return _stale(replace(state, opted_out_numbers=folded.opted_out_numbers), act, log)
    events: list[Event] = []
    history: list[HistoryEntry] = []
    for key in sorted(set(state.slots) | set(folded.slots)):
        new = folded.slot(key)
        if new.status == state.status(key) and (
            key not in SMS_SLOTS or folded.phone_number == state.phone_number
        ):
            continue  # C6: the same status for another number is a change
        history.append(_entry(key, act, "applied", new.status, new.consented_at, new.phone_number))
        if key == "sms_transactional" and folded.status("sms_marketing") == "subscribed":
            continue  # C5: marketing consent still covers transactional: no SMS opt-out
        if key.startswith("list:") and folded.status("email") == "unsubscribed":
            continue  # an older list subscribe under a newer opt-out enters no list flow
        for event in _event(key, new.status, act):
            if event not in events:
                events.append(event)
    return Outcome(
        replace(folded, log=log),
        _only_if_alone(events),
        tuple(history),
        confirmation=own.confirmation if fresh else None,
    )


def _newest_of_channel(state: ProfileConsent, act: Act) -> bool:
    """X3: whether `act` is newer than every act of its own channel in `state`."""
    newest = state.newest_version(act.channel)
    return newest is None or newest < act.version


def _stale(state: ProfileConsent, act: Act, log: ActLog) -> Outcome:
    entries = tuple(_entry(k, act, "stale", state.status(k)) for k in targets(act))
    return Outcome(replace(state, log=log), history=entries, stale=True)


def reject(state: ProfileConsent, act: Act, reason: str) -> Outcome:
    """An act refused at the edge (for example an email subscribe without an address):
    kept in history as rejected, nothing else (X3a)."""
    return _rejected(state, act, reason)


def live_time(now: datetime) -> datetime:
    """X3: the ordering time of an act the person makes live on our pages (link click,
    preference centre): the latest time any act received so far can carry, so what they
    do now wins over every act already received, future-dated ones included."""
    return now + CLOCK_SKEW


def unsubscribe_done(outcome: Outcome, act: Act) -> bool:
    """C12, X3: whether a page may tell the person they are unsubscribed: only when every
    slot the act names is `unsubscribed` afterwards (never for a rejected act)."""
    if outcome.rejection is not None:
        return False
    return all(outcome.state.status(k) == "unsubscribed" for k in targets(act))
