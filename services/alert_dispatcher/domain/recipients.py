"""The recipient opt-in lifecycle (A2–A4). Pure.

unconfirmed --confirm link--> confirmed --unsubscribe link--> disabled
A recipient added to an action who is not confirmed gets a (new) confirmation email and
becomes unconfirmed with a new generation; links carry the generation, so an old
confirmation link cannot undo a later unsubscribe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["unconfirmed", "confirmed", "disabled"]


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


def on_added(current: Recipient | None, email: str) -> Added:
    """A3: a new, unconfirmed or disabled recipient is asked to confirm; a confirmed one is
    not asked again."""
    if current is None:
        return Added(Recipient(email, "unconfirmed", 1), True)
    if current.status == "confirmed":
        return Added(current, False)
    return Added(Recipient(email, "unconfirmed", current.generation + 1), True)


def on_confirm(current: Recipient | None, generation: int) -> Recipient | None:
    """A4: the confirm link of the current generation confirms (idempotently); any other
    click changes nothing (returns None)."""
    if current is None or current.generation != generation or current.status == "disabled":
        return None
    if current.status == "confirmed":
        return None
    return Recipient(current.email, "confirmed", current.generation)


def on_unsubscribe(current: Recipient | None, generation: int) -> Recipient | None:
    """A4: the unsubscribe link in an alert disables the recipient (idempotently)."""
    if current is None or current.generation != generation or current.status == "disabled":
        return None
    return Recipient(current.email, "disabled", current.generation)
