"""The recipient opt-in lifecycle (A2–A4). Pure.

unconfirmed --confirm link--> confirmed --unsubscribe link--> disabled
A recipient added to an action who is not confirmed gets a (new) confirmation email and
becomes unconfirmed with a new generation. Confirm links carry the generation, so an old
confirmation link cannot undo a later unsubscribe: a disabled recipient comes back only
by being removed, re-added and confirming the new email.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from email_validator import EmailNotValidError, validate_email

from shared.addresses import email_error
from shared.domain.identity import email_identity

MAX_RECIPIENTS = 5

Status = Literal["unconfirmed", "confirmed", "disabled"]
LinkOutcome = Literal["changed", "unchanged", "expired", "unknown"]


@dataclass(frozen=True)
class Recipient:
    """A recipient's opt-in. `email` is the address in its normal form (I1), the one key
    of their opt-in in every spelling; `address` the spelling mails go to (as a flow
    wrote it), None when only the key is known."""

    email: str
    status: Status
    generation: int
    address: str | None = field(default=None, compare=False)

    @property
    def mail_to(self) -> str:
        return self.address or self.email


def recipient_key(address: str) -> str:
    """The key of a recipient's opt-in: the address's normal form (I1), so `Lead@Bücher.de`,
    its NFD spelling and `lead@xn--bcher-kva.de` are one recipient."""
    return email_identity(address) or address.strip()


def sendable(address: str) -> str:
    """The spelling mails go to: the address as written (local part and its case kept),
    trimmed, in NFC, with its domain in IDNA form where the local part is ASCII, so a
    server without SMTPUTF8 takes it."""
    text = unicodedata.normalize("NFC", address).strip()
    try:
        valid = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return text
    return valid.ascii_email or valid.normalized


def alert_addresses(recipients: Iterable[str]) -> dict[str, str]:
    """The recipients an alert action or request may go to (A1): valid ones, folded by
    their normal form (I1), at most five, each key with the first spelling written."""
    out: dict[str, str] = {}
    for raw in recipients:
        if email_error(raw) is None:
            out.setdefault(recipient_key(raw), sendable(raw))
    return dict(list(out.items())[:MAX_RECIPIENTS])


@dataclass(frozen=True)
class Added:
    """What adding a recipient to an action does: the new state, and whether to mail a
    confirmation."""

    recipient: Recipient
    send_confirmation: bool


@dataclass(frozen=True)
class Clicked:
    """What a confirm or unsubscribe click does: the state to store (None: no change) and
    what to tell the person."""

    recipient: Recipient | None
    outcome: LinkOutcome


def on_added(current: Recipient | None, email: str, address: str | None = None) -> Added:
    """A3: a new, unconfirmed or disabled recipient is asked to confirm; a confirmed one is
    not asked again. `email` is the key, `address` the spelling to mail."""
    if current is None:
        return Added(Recipient(email, "unconfirmed", 1, address), True)
    if current.status == "confirmed":
        return Added(current, False)
    return Added(
        Recipient(email, "unconfirmed", current.generation + 1, address or current.address),
        True,
    )


def added_to_actions(
    current: dict[str, Recipient],
    previous: dict[str, set[str]],
    steps: Iterable[tuple[str, list[str]]],
    written: dict[str, str] | None = None,
) -> list[Added]:
    """A3 for one saved flow version: every recipient (key) that a step lists and did not
    list before, each decided once even if several steps add them; `written` gives the
    spelling to mail for each key."""
    seen: set[str] = set()
    changes = []
    for step_id, recipients in steps:
        for email in recipients:
            if email in previous.get(step_id, set()) or email in seen:
                continue
            seen.add(email)
            changes.append(on_added(current.get(email), email, (written or {}).get(email)))
    return changes


def on_confirm(current: Recipient | None, generation: int) -> Clicked:
    """A4: the confirm link of the current generation confirms (idempotently). A link from
    an earlier email, or any link once the recipient unsubscribed, has expired."""
    if current is None or generation > current.generation:
        return Clicked(None, "unknown")
    if generation < current.generation or current.status == "disabled":
        return Clicked(None, "expired")
    if current.status == "confirmed":
        return Clicked(None, "unchanged")
    return Clicked(
        Recipient(current.email, "confirmed", current.generation, current.address), "changed"
    )


def on_unsubscribe(current: Recipient | None, generation: int) -> Clicked:
    """A4: the unsubscribe link in any alert the recipient received disables them
    (idempotently); wanting out is honoured even from an older email."""
    if current is None or generation > current.generation:
        return Clicked(None, "unknown")
    if current.status == "disabled":
        return Clicked(None, "unchanged")
    return Clicked(
        Recipient(current.email, "disabled", current.generation, current.address), "changed"
    )
