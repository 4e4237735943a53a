"""A reference model of consent (C4–C11, X3) and suppression (S3–S5), for tests only.

Deliberately simple and written from SPEC and docs/rules.md, not from the production
code: keep every act ever received; to answer, sort them by effective time and fold
them one by one over a dict of statuses. No versions, no staleness, no late path, no
events: if production agrees with this after any arrival order, production is right.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

SKEW = timedelta(minutes=5)
SMS = ("sms_marketing", "sms_transactional")


@dataclass(frozen=True)
class Received:
    """One act and the facts around its receipt that SPEC lets matter."""

    act_id: str
    action: str  # subscribe | unsubscribe | resubscribe
    channel: str  # email | sms | push
    claimed_at: datetime
    received_at: datetime
    purpose: str = "marketing"
    list_id: str | None = None
    scope: str = "group"  # group | client:<c> | user:<c>/<u>
    evidence: str | None = None
    historical_import: bool = False
    phone: str | None = None
    own: bool = False  # the person's own act: confirmation click, START from the phone
    number_only: bool = False  # C6: the number's own act, for a profile carrying it
    double_opt_in: bool = True
    manual_suppression: bool = False
    spam_suppression: bool = False

    @property
    def at(self) -> datetime:
        """X3: a time beyond receipt plus skew counts as the receipt."""
        return self.received_at if self.claimed_at > self.received_at + SKEW else self.claimed_at


@dataclass
class ConsentModel:
    acts: dict[str, Received] = field(default_factory=dict)

    def receive(self, act: Received) -> None:
        self.acts.setdefault(act.act_id, act)  # X2: the same id twice is one act

    def answer(self) -> tuple[dict[str, str], str | None]:
        """(status per slot, except never_subscribed; the phone SMS consent belongs to)."""
        status: dict[str, str] = {}
        phone: str | None = None
        opted_out: set[str] = set()  # numbers that left with their SMS unsubscribed
        # X3: acts of one time are ordered opt-out last, then by id.
        for a in sorted(
            self.acts.values(), key=lambda a: (a.at, a.action == "unsubscribe", a.act_id)
        ):
            phone = _apply(status, phone, a, opted_out)
        return {k: v for k, v in status.items() if v != "never_subscribed"}, phone


# Letters that render as nothing (Hangul fillers) and the blank braille pattern.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_text(text: str | None) -> bool:
    """C11: at least one visible character after Unicode normalisation: a letter,
    number, punctuation mark or symbol that is not one of the blank ones."""
    norm = unicodedata.normalize("NFKC", text or "")
    return any(unicodedata.category(c)[0] in "LNPS" and c not in _BLANK_LETTERS for c in norm)


def slots_of(a: Received) -> list[str]:
    if a.channel == "push":
        return ["push"]
    if a.channel == "sms":
        if a.action == "unsubscribe":
            return list(SMS)  # C5: both purposes
        return [f"sms_{a.purpose}"]
    if a.scope != "group":
        return [f"scope:{a.scope}"]
    if a.list_id is None:
        return ["email"]
    return [f"list:{a.list_id}"] if a.action == "unsubscribe" else [f"list:{a.list_id}", "email"]


def refused(a: Received) -> bool:
    """Acts nobody may apply: C11 resubscribe without evidence; X3a odd combinations."""
    has_evidence = has_visible_text(a.evidence)
    return (
        (a.action == "resubscribe" and not has_evidence)
        or (a.channel != "email" and (a.list_id is not None or a.scope != "group"))
        or (a.list_id is not None and a.scope != "group")
    )


def _apply(
    status: dict[str, str], phone: str | None, a: Received, opted_out: set[str]
) -> str | None:
    """Fold one act into `status`; returns the phone number afterwards."""
    if refused(a):
        return phone
    if a.number_only and phone is not None and a.phone != phone:
        # C6: the number's act while the profile has another number: remembered for it.
        (opted_out.add if a.action == "unsubscribe" else opted_out.discard)(a.phone)
        return phone
    trial, new_phone, left = dict(status), phone, set(opted_out)
    if a.phone and a.phone != phone:
        if phone is not None:  # C6: a new number starts with no SMS consent ...
            if trial.get("sms_marketing") == "unsubscribed":
                left.add(phone)
            else:
                left.discard(phone)
            for k in SMS:
                trial.pop(k, None)
        if a.phone in left:  # ... but a number's opt-out is never forgotten (C11)
            trial.update(dict.fromkeys(SMS, "unsubscribed"))
        new_phone = a.phone
    if a.channel == "sms" and new_phone is None:
        return phone  # C6: no number, no SMS consent
    if not _act(trial, a):
        return phone  # rejected: nothing changes, not even the number
    status.clear()
    status.update(trial)
    opted_out.clear()
    opted_out.update(left)
    return new_phone


def _act(status: dict[str, str], a: Received) -> bool:
    """Apply `a` to `status`; False when C11 rejects it."""
    if a.action == "unsubscribe":
        for k in slots_of(a):
            status[k] = "unsubscribed"
        return True
    values = {status.get(k, "never_subscribed") for k in slots_of(a)}
    evidence = has_visible_text(a.evidence)
    opted_out = "unsubscribed" in values
    if opted_out and not (a.own or evidence):
        # C11: email asks the person (a confirmation mail); anything else is refused.
        return a.channel == "email" and not a.historical_import
    # Evidence skips the confirmation mail after an opt-out or for `resubscribe` only.
    skips_mail = (
        a.own or a.historical_import or (evidence and (opted_out or a.action == "resubscribe"))
    )
    if not skips_mail and a.channel == "email" and a.double_opt_in:
        return True  # C8: nothing until the click
    for k in slots_of(a):
        if k.startswith("scope:") and status.get(k) != "unsubscribed":
            continue  # C10: nothing to lift at that level
        status[k] = "subscribed"
    return True


@dataclass
class SuppressionModel:
    """S1, S4, S5 in arrival order: what is suppressed, and soft bounces in a row."""

    limit: int
    entries: dict[tuple[str, str, str | None], datetime] = field(default_factory=dict)
    bounces: dict[str | None, int] = field(default_factory=dict)

    def command(self, action: str, reason: str, list_id: str | None, at: datetime) -> None:
        if reason == "delivered":
            if list_id is None:
                self.bounces.clear()
            else:
                self.bounces.pop(list_id, None)
            return
        if action == "suppress" and reason == "soft_bounce":
            self.bounces[list_id] = self.bounces.get(list_id, 0) + 1
            if self.bounces[list_id] < self.limit:
                return
        if action == "suppress":
            self.entries.setdefault(("email", reason, list_id), at)
            return
        if reason == "spam_complaint":
            return  # S5: never by unsuppress
        for key in list(self.entries):
            if key[1] == "spam_complaint":
                continue
            if (list_id is not None and key[2] == list_id) or (
                list_id is None and key[2] is None and key[1] == reason
            ):
                del self.entries[key]
        if reason == "soft_bounce":
            self.bounces.pop(list_id, None)

    def lift(
        self,
        list_id: str | None,
        evidence: bool,
        at: datetime,
        historical: bool = False,
        scope: str | None = None,
    ) -> None:
        """A re-subscribe event (C9, S5) at group level: lifts a manual suppression
        (global, never by an import) and, with evidence, the spam complaint of the same
        list made before it (C11: whatever the import flag)."""
        if scope not in (None, "group"):
            return
        for key, since in list(self.entries.items()):
            if key[2] != list_id or since > at:
                continue
            if (key[1] == "spam_complaint" and evidence) or (
                key[1] == "manual" and list_id is None and not historical
            ):
                del self.entries[key]

    def in_force(self) -> list[dict[str, Any]]:
        return [
            {"channel": c, "reason": r, "list_id": lst, "since": since.isoformat()}
            for (c, r, lst), since in sorted(self.entries.items(), key=lambda kv: str(kv[0]))
        ]


def can_receive(
    status: dict[str, str],
    phone: str | None,
    suppressions: list[dict[str, Any]],
    channel: str,
    list_id: str | None = None,
    client: str | None = None,
    user: str | None = None,
) -> bool:
    """S6 with C5 and C10, from the model's answer (written here again on purpose)."""
    if channel == "push":
        return status.get("push") == "subscribed"
    if channel.startswith("sms"):
        ok = status.get("sms_marketing") == "subscribed" or (
            channel == "sms_transactional" and status.get("sms_transactional") == "subscribed"
        )
        return ok and not any(s["channel"] == "sms" for s in suppressions)
    if status.get("email") == "unsubscribed":
        return False
    if client and status.get(f"scope:client:{client}") == "unsubscribed":
        return False
    if client and user and status.get(f"scope:user:{client}/{user}") == "unsubscribed":
        return False
    if list_id and status.get(f"list:{list_id}") == "unsubscribed":
        return False
    return not any(
        s["channel"] == "email" and (s["list_id"] is None or s["list_id"] == list_id)
        for s in suppressions
    )
