"""Consent receipts and their hash chain (C15, C16). Pure.

Every applied consent act of a profile yields one receipt (`receipt`): what the act
decided (its applied history rows), how, by whom, under which notice and jurisdiction,
and the keyed hashes of the personal values it is about. A profile's receipts form a
chain: each carries its `sequence` and the previous receipt's `hash`, and its own
`hash` is SHA-256 of its canonical form (`canonical`: RFC 8785 JSON canonicalisation of
every field but `hash`). `verify` recomputes a chain and names the first receipt that
fails and why.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import rfc8785
from pydantic_core import to_json

from services.consent.domain.model import SMS_SLOTS, Act, HistoryEntry, iso, slot_channel
from services.consent.domain.records import quick_init
from shared.contracts.receipts import RECEIPT_VERSION
from shared.domain.identity import derived_id


@quick_init
@dataclass(frozen=True, slots=True)
class Head:
    """The end of a profile's chain: how many receipts it has and the last one's hash."""

    sequence: int = 0
    hash: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Personal:
    """The personal values a receipt is about, kept beside it (never hashed into the
    chain; an erase blanks them, P2): the profile's email and phone number and the act's
    evidence, each committed to by its keyed hash in the receipt."""

    email: str | None = None
    phone_number: str | None = None
    evidence: str | None = None

    def to_json(self) -> dict[str, Any] | None:
        values = {"email": self.email, "phone_number": self.phone_number, "evidence": self.evidence}
        return values if any(values.values()) else None


@quick_init
@dataclass(frozen=True, slots=True)
class Receipt:
    """One stored receipt: the body (every field of `ConsentReceipt` but `hash`), its
    hash, and the personal values beside it (None once erased)."""

    account_id: str
    profile_id: str
    body: Mapping[str, Any]
    hash: str
    personal: Mapping[str, Any] | None = None
    # The body's canonical JSON as hashed, when this receipt was just made: written to
    # the database as it is, so the body is encoded once.
    canonical: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def receipt_id(self) -> str:
        return str(self.body.get("receipt_id"))

    @property
    def sequence(self) -> int:
        return int(self.body.get("sequence") or 0)

    def document(self) -> dict[str, Any]:
        """The receipt as published (`ConsentReceipt`): the body with its hash."""
        return {**self.body, "hash": self.hash}


Hasher = Callable[[str, str], str]
"""A keyed hash of one personal value: `(kind, value) -> hex` (`shared.privacy`)."""


def canonical(body: Mapping[str, Any]) -> bytes:
    """C16: the receipt's canonical form, RFC 8785 (JSON Canonicalization Scheme), by the
    `rfc8785` library: what `verify` recomputes."""
    return rfc8785.dumps(dict(body))


def digest(body: Mapping[str, Any]) -> str:
    """C16: SHA-256 of the canonical form, hex."""
    return hashlib.sha256(canonical(body)).hexdigest()


def sorted_canonical(body: Mapping[str, Any]) -> bytes:
    """`canonical` of a receipt body whose objects hold their keys in sorted order
    already (as `receipt` builds them), by pydantic's JSON writer: it writes keys in the
    order given, no blanks, UTF-8, and escapes strings as RFC 8785 does (`"`, `\\`, the
    short forms for \\b \\t \\n \\f \\r, lower-case `\\u00xx` for other control
    characters). Cheaper than sorting and encoding in Python; tested
    against the library on generated bodies, and `verify` recomputes with the library."""
    return to_json(body)


def receipt_id(account_id: str, profile_id: str, act_id: str) -> str:
    """X2: one receipt per account, profile and act (an act applied to several profiles
    through their address or number gets one on each)."""
    return derived_id(account_id, profile_id, act_id, "receipt")


make_receipt_id = receipt_id  # `receipt`'s parameter of that name hides the function


def _iso(at: datetime | None) -> str | None:
    return iso(at) if at else None


def _purpose(entry: HistoryEntry, act: Act) -> dict[str, Any]:
    """What a receipt records of one applied history row: it depends on the row's slot
    and status only, so it is made once per pair (`_purpose_of`) and copied."""
    return _purpose_of(entry.slot, entry.status).copy()


@functools.lru_cache(maxsize=4096)
def _purpose_of(slot: str, status: str) -> dict[str, Any]:
    channel = slot_channel(slot)
    purpose = slot.removeprefix("sms_") if slot in SMS_SLOTS else "marketing"
    return {  # keys in sorted order (`sorted_canonical`)
        "channel": channel,
        "list_id": slot.removeprefix("list:") if slot.startswith("list:") else None,
        "purpose": purpose,
        "scope": slot.removeprefix("scope:") if slot.startswith("scope:") else "group",
        "slot": slot,
        "status": status,
    }


def applied(history: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """The history rows of an outcome that a receipt records: those `applied`."""
    return [h for h in history if h.result == "applied"]


def receipt(
    *,
    account_id: str,
    account_name: str,
    profile_id: str,
    act: Act,
    entries: Sequence[HistoryEntry],
    personal: Personal,
    head: Head,
    recorded_at: datetime,
    keyed: Hasher,
    receipt_id: str | None = None,
) -> Receipt:
    """C15: the receipt of one applied act (`entries`: its applied history rows) for
    one profile, the next link after `head` (C16). `receipt_id`: the id `receipt_id`
    gives, when the caller has it already."""
    # Every object's keys in sorted order: the body is its own canonical form's order
    # (`sorted_canonical`).
    body = {
        "act_id": act.act_id,
        "action": act.action,
        "actor": act.actor,
        "channel": act.channel,
        "claimed_at": _iso(act.claimed_at),
        "collected_at": _iso(act.act_at),
        "controller": {"id": account_id, "name": account_name},
        "evidence_hash": keyed("evidence", personal.evidence) if personal.evidence else None,
        "historical_import": act.historical_import,
        "jurisdiction": act.jurisdiction,
        "method": act.method,
        "notice": act.notice,
        "previous_hash": head.hash,
        "purposes": [_purpose(e, act) for e in entries],
        "receipt_id": receipt_id or make_receipt_id(account_id, profile_id, act.act_id),
        "recorded_at": _iso(recorded_at),
        "schema_version": 1,
        "sequence": head.sequence + 1,
        "status": entries[0].status,
        "subject": {
            "email_hash": keyed("email", personal.email) if personal.email else None,
            "phone_hash": (
                keyed("phone", personal.phone_number) if personal.phone_number else None
            ),
            "profile_id": profile_id,
        },
        "version": RECEIPT_VERSION,
    }
    text = sorted_canonical(body)
    return Receipt(
        account_id, profile_id, body, hashlib.sha256(text).hexdigest(), personal.to_json(), text
    )


# --- verification (C16) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """The first receipt of a chain that fails, and why."""

    receipt_id: str | None
    sequence: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"receipt_id": self.receipt_id, "sequence": self.sequence, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A profile's chain, verified: how many receipts, the head, and the first failure."""

    profile_id: str
    receipts: int
    head: str | None
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "ok": self.ok,
            "receipts": self.receipts,
            "head": self.head,
            "failure": self.failure.to_json() if self.failure else None,
        }


@dataclass(frozen=True, slots=True)
class HistoryLink:
    """An applied history row as stored, with the receipt it belongs to (C16: history
    rows are checked against the receipts that record them)."""

    receipt_id: str | None
    slot: str
    status: str
    act_id: str


def _personal_problem(r: Receipt, keyed: Hasher | None) -> str | None:
    if keyed is None or not r.personal:
        return None
    subject = r.body.get("subject") or {}
    pairs = (
        ("email", "email", subject.get("email_hash")),
        ("phone_number", "phone", subject.get("phone_hash")),
        ("evidence", "evidence", r.body.get("evidence_hash")),
    )
    for name, kind, committed in pairs:
        value = r.personal.get(name)
        if value and keyed(kind, value) != committed:
            return f"the stored {name} does not match the keyed hash the receipt commits to"
    return None


def _link_problem(
    r: Receipt,
    i: int,
    prev: str | None,
    by_receipt: Mapping[str, Sequence[HistoryLink]] | None,
    keyed: Hasher | None,
) -> str | None:
    """Why the `i`-th receipt of a chain fails, after a receipt whose hash is `prev`."""
    if r.sequence != i:
        return (
            f"sequence {r.sequence} where {i} was expected: a receipt was removed or the"
            " receipts were reordered"
        )
    if r.body.get("previous_hash") != prev:
        if i == 1:
            return "the first receipt names a previous receipt: receipts before it were removed"
        return (
            f"previous_hash does not match the hash of receipt {i - 1}: a receipt before"
            " it was removed, reordered or rewritten"
        )
    if digest(r.body) != r.hash:
        return "its content does not hash to its stored hash: the receipt was edited"
    if (problem := _personal_problem(r, keyed)) is not None:
        return problem
    if by_receipt is not None:
        rows = by_receipt.get(r.receipt_id, [])
        recorded = [(p["slot"], p["status"]) for p in r.body.get("purposes") or []]
        stored = [(h.slot, h.status) for h in rows]
        if stored != recorded or any(h.act_id != r.body.get("act_id") for h in rows):
            return (
                "its history rows differ from what it records: a history row was edited or removed"
            )
    return None


def verify(
    profile_id: str,
    receipts: Sequence[Receipt],
    head: Head | None,
    history: Sequence[HistoryLink] | None = None,
    keyed: Hasher | None = None,
) -> Verdict:
    """C16: recompute a profile's chain, in stored order. The first receipt that fails
    is named with the reason: its sequence is not the next one (removed or reordered),
    its `previous_hash` is not the hash of the receipt before it (one before it was
    removed, reordered or rewritten), its content does not hash to its stored hash
    (edited), a personal value beside it does not match its keyed hash, or its applied
    history rows differ from what it records. Then the chain must end at the profile's
    head (the count and last hash kept apart: a removed or rewritten last receipt).
    `history` None: the history is not checked; `keyed` None: nor the personal values."""
    prev: str | None = None
    by_receipt: dict[str, list[HistoryLink]] = {}
    for link in history or ():
        by_receipt.setdefault(link.receipt_id or "", []).append(link)
    order = [link.receipt_id for link in history or () if link.receipt_id]
    seen_order: list[str] = []
    for i, r in enumerate(receipts, start=1):
        reason = _link_problem(r, i, prev, None if history is None else by_receipt, keyed)
        if reason is not None:
            return Verdict(profile_id, len(receipts), prev, Failure(r.receipt_id, i, reason))
        seen_order.append(r.receipt_id)
        prev = r.hash
    if history is not None:
        firsts = list(dict.fromkeys(order))
        if firsts != seen_order or (set(by_receipt) - {""}) - set(seen_order):
            bad = next(
                (a for a, b in zip(firsts, seen_order, strict=False) if a != b),
                firsts[-1] if firsts else None,
            )
            return Verdict(
                profile_id,
                len(receipts),
                prev,
                Failure(
                    bad,
                    None,
                    "the history rows are not in the order of the receipts, or name a"
                    " receipt missing from the chain",
                ),
            )
    if head is not None and (head.sequence, head.hash) != (len(receipts), prev):
        last = receipts[-1] if receipts else None
        return Verdict(
            profile_id,
            len(receipts),
            prev,
            Failure(
                last.receipt_id if last else None,
                len(receipts) or None,
                f"the chain ends at receipt {len(receipts)} but its head names receipt"
                f" {head.sequence}: the last receipts were removed or rewritten",
            ),
        )
    return Verdict(profile_id, len(receipts), prev)


def in_force(receipts: Sequence[Receipt], slot: str, status: str) -> Receipt | None:
    """C17: the newest receipt that set `slot`, when the slot still has the status it
    set (a status the profile's new phone number reset, C6, or an erase has none)."""
    for r in reversed(receipts):
        for p in r.body.get("purposes") or []:
            if p.get("slot") == slot:
                return r if p.get("status") == status else None
    return None
