"""The recipient opt-in lifecycle (A2–A4). Pure.

unconfirmed --confirm link--> confirmed --unsubscribe link--> disabled
A recipient added to an action who is not confirmed gets a (new) confirmation email and
becomes unconfirmed with a new generation. Confirm links carry the generation, so an old
confirmation link cannot undo a later unsubscribe: a disabled recipient comes back only
by being removed, re-added and confirming the new email.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Status = Literal["unconfirmed", "confirmed", "disabled"]
LinkOutcome = Literal["changed", "unchanged", "expired", "unknown"]


@dataclass(frozen=True)
class Recipient:
    email: str
    status: Status
    generation: int


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


def on_added(current: Recipient | None, email: str) -> Added:
    """A3: a new, unconfirmed or disabled recipient is asked to confirm; a confirmed one is
    not asked again."""
    if current is None:
        return Added(Recipient(email, "unconfirmed", 1), True)
    if current.status == "confirmed":
        return Added(current, False)
    return Added(Recipient(email, "unconfirmed", current.generation + 1), True)


def added_to_actions(
    current: dict[str, Recipient],
    previous: dict[str, set[str]],
    steps: Iterable[tuple[str, list[str]]],
) -> list[Added]:
    """A3 for one saved flow version: every recipient that a step lists and did not list
    before, each decided once even if several steps add them."""
    seen: set[str] = set()
    changes = []
    for step_id, recipients in steps:
        for email in recipients:
            if email in previous.get(step_id, set()) or email in seen:
                continue
            seen.add(email)
            changes.append(on_added(current.get(email), email))
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
    return Clicked(Recipient(current.email, "confirmed", current.generation), "changed")


def on_unsubscribe(current: Recipient | None, generation: int) -> Clicked:
    """A4: the unsubscribe link in any alert the recipient received disables them
    (idempotently); wanting out is honoured even from an older email."""
    if current is None or generation > current.generation:
        return Clicked(None, "unknown")
    if current.status == "disabled":
        return Clicked(None, "unchanged")
    return Clicked(Recipient(current.email, "disabled", current.generation), "changed")
