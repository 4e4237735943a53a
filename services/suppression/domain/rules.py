"""Suppressions and bounce counting (S1–S6). Pure: state in, outcome out.

A profile's suppressions are a set of (channel, reason, list) entries; `list_id` None is
a global suppression, otherwise the profile is suppressed from that list only (S1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple

from shared.domain.identity import email_identity, phone_identity

REMOVABLE = frozenset({"manual", "hard_bounce", "soft_bounce", "invalid_email"})  # S5
SPAM_LOCKED = (
    "S5: a spam complaint is lifted only by a re-subscribe with evidence (C11); "
    "it cannot be unsuppressed"
)


@dataclass(frozen=True, slots=True)
class Suppression:
    channel: str
    reason: str
    list_id: str | None
    since: datetime

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.channel, self.reason, self.list_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "reason": self.reason,
            "list_id": self.list_id,
            "since": self.since.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class SuppressionState:
    """The suppressions in force, and soft bounces in a row: `soft_bounces` for mail sent
    without a list, `list_bounces` per list (S4)."""

    suppressions: tuple[Suppression, ...] = ()
    soft_bounces: int = 0
    list_bounces: Mapping[str, int] = field(default_factory=dict)

    def has(self, channel: str, reason: str, list_id: str | None) -> bool:
        return any(s.key == (channel, reason, list_id) for s in self.suppressions)


@dataclass(frozen=True, slots=True)
class Command:
    action: Literal["suppress", "unsuppress"]
    reason: str
    at: datetime
    channel: str = "email"
    list_id: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    type: Literal["suppressed", "unsuppressed"]
    channel: str
    reason: str
    list_id: str | None = None
    at: datetime | None = None  # when the suppressing event happened (S3 orders by it)


@dataclass(frozen=True, slots=True)
class Outcome:
    state: SuppressionState
    changes: tuple[Change, ...] = ()
    rejection: str | None = None


def _add(state: SuppressionState, s: Suppression) -> Outcome:
    if state.has(*s.key):
        return Outcome(state)
    return Outcome(
        replace(state, suppressions=(*state.suppressions, s)),
        (Change("suppressed", s.channel, s.reason, s.list_id, s.since),),
    )


def _remove(state: SuppressionState, match) -> Outcome:
    gone = [s for s in state.suppressions if match(s)]
    if not gone:
        return Outcome(state)
    kept = tuple(s for s in state.suppressions if not match(s))
    return Outcome(
        replace(state, suppressions=kept),
        tuple(Change("unsuppressed", s.channel, s.reason, s.list_id) for s in gone),
    )


def decide(state: SuppressionState, cmd: Command, soft_bounce_limit: int) -> Outcome:
    """S1, S4, S5: what a suppression command does."""
    if cmd.reason == "delivered":
        # S4: a delivery resets the count in a row: of its list, or every count when the
        # mail had no list (the mailbox takes mail again).
        if cmd.list_id is None:
            return Outcome(replace(state, soft_bounces=0, list_bounces={}))
        counts = {k: v for k, v in state.list_bounces.items() if k != cmd.list_id}
        return Outcome(replace(state, list_bounces=counts))
    if cmd.action == "suppress":
        if cmd.reason == "soft_bounce":
            return _soft_bounce(state, cmd, soft_bounce_limit)
        return _add(state, Suppression(cmd.channel, cmd.reason, cmd.list_id, cmd.at))
    # unsuppress
    if cmd.list_id is not None:  # S5: list-specific suppressions, whatever their reason
        out = _add_rejection_if_spam(
            state,
            cmd,
            lambda s: (
                s.list_id == cmd.list_id
                and s.channel == cmd.channel
                and s.reason != "spam_complaint"
            ),
        )
        if out.rejection is None and cmd.reason == "soft_bounce":
            counts = {k: v for k, v in out.state.list_bounces.items() if k != cmd.list_id}
            out = replace(out, state=replace(out.state, list_bounces=counts))
        return out
    if cmd.reason == "spam_complaint":
        return Outcome(state, rejection=SPAM_LOCKED)
    out = _remove(
        state,
        lambda s: s.list_id is None and s.channel == cmd.channel and s.reason == cmd.reason,
    )
    if cmd.reason == "soft_bounce":
        out = replace(out, state=replace(out.state, soft_bounces=0))
    return out


def _soft_bounce(state: SuppressionState, cmd: Command, limit: int) -> Outcome:
    """S4: counted in a row, per list and without a list; the limit suppresses that list
    (or, without a list, the address)."""
    if cmd.list_id is None:
        counted = replace(state, soft_bounces=state.soft_bounces + 1)
        reached = counted.soft_bounces >= limit
    else:
        n = state.list_bounces.get(cmd.list_id, 0) + 1
        counted = replace(state, list_bounces={**state.list_bounces, cmd.list_id: n})
        reached = n >= limit
    if not reached:
        return Outcome(counted)
    return _add(counted, Suppression(cmd.channel, "soft_bounce", cmd.list_id, cmd.at))


def _add_rejection_if_spam(state: SuppressionState, cmd: Command, match) -> Outcome:
    if cmd.reason == "spam_complaint":
        return Outcome(state, rejection=SPAM_LOCKED)
    return _remove(state, match)


LIFTING_EVENTS = frozenset({"Subscribed to Email Marketing", "Subscribed to List"})


def on_consent_change(
    state: SuppressionState,
    event_type: str,
    evidence: str | None,
    historical_import: bool,
    occurred_at: datetime,
    scope: str | None = None,
    list_id: str | None = None,
) -> Outcome:
    """S5/C11: a re-subscribe with evidence lifts a spam complaint made before it (global
    by `Subscribed to Email Marketing`, list-specific by `Subscribed to List` for that
    list); C9: subscribing a manually suppressed profile lifts the global manual
    suppression made before it. `occurred_at` is the act's ordering time. Evidence lifts
    a complaint whatever the act's `historical_import` flag (C11); an import never lifts
    an operator's manual suppression."""
    if event_type not in LIFTING_EVENTS:
        return Outcome(state)
    if scope not in (None, "group"):
        return Outcome(state)
    target = list_id if event_type == "Subscribed to List" else None
    if event_type == "Subscribed to List" and not list_id:
        return Outcome(state)

    def lifted(s: Suppression) -> bool:
        if s.channel != "email" or s.list_id != target or s.since > occurred_at:
            return False
        if s.reason == "spam_complaint":
            return bool((evidence or "").strip())
        return s.reason == "manual" and target is None and not historical_import

    return _remove(state, lifted)


# --- one address, every profile that carries it (I1) ------------------------------------


class Address(NamedTuple):
    """An address of an account in its normal form (I1): `channel` `email` is an email
    address, `sms` a phone number. Email suppressions belong to the first, SMS
    suppressions to the second."""

    account_id: str
    channel: str
    key: str


def addresses(account_id: str, profile: Mapping[str, Any]) -> set[Address]:
    """The addresses `profile` carries, in their normal form."""
    out = set()
    if email := email_identity(profile.get("email")):
        out.add(Address(account_id, "email", email))
    if phone := phone_identity(profile.get("phone_number")):
        out.add(Address(account_id, "sms", phone))
    return out


def stored_spellings(address: Address) -> list[str]:
    """The forms `address` may be stored in as a key: its normal form and, for an email
    with an international domain, the Unicode-domain form that migration 0003 wrote for
    rows it could not put into IDNA form."""
    forms = [address.key]
    if address.channel == "email":
        local, _, domain = address.key.rpartition("@")
        try:
            unicode_domain = domain.encode("ascii").decode("idna")
        except UnicodeError:
            unicode_domain = domain
        if unicode_domain != domain:
            forms.append(f"{local}@{unicode_domain}")
    return forms


def merge(first: Outcome, second: Outcome) -> Outcome:
    """`first` followed by `second` (decided on `first.state`)."""
    return Outcome(second.state, first.changes + second.changes, second.rejection)


def inherit(state: SuppressionState, carried: Iterable[Suppression]) -> Outcome:
    """I1: a profile that newly carries an address takes on the suppressions that address
    holds under other profiles (with their own `since`)."""
    out = Outcome(state)
    for s in sorted(carried, key=lambda s: (s.since, s.reason, s.list_id or "")):
        out = merge(out, _add(out.state, s))
    return out


def for_carrier(
    state: SuppressionState, cmd: Command, own: Outcome, soft_bounce_limit: int
) -> Outcome:
    """I1: what a command for one profile does to another profile carrying the same
    address. An unsuppress (or a delivery report) is the address's, so it is applied as
    it is; a suppression the command added (a soft bounce only when it reached the
    limit) is added too. Soft-bounce counts stay per profile."""
    if own.rejection is not None:
        return Outcome(state)
    if cmd.action == "unsuppress" or cmd.reason == "delivered":
        return decide(state, cmd, soft_bounce_limit)
    out = Outcome(state)
    for change in own.changes:
        if change.type == "suppressed":
            since = change.at or cmd.at
            s = Suppression(change.channel, change.reason, change.list_id, since)
            out = merge(out, _add(out.state, s))
    return out
