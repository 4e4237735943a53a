"""SMS keywords (C13). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from services.consent.domain.model import ProfileConsent

Keyword = Literal["stop", "start", "help"]
Reply = Literal["stop", "start", "help", "stop_not_applied", "start_not_applied"]

STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START = frozenset({"START", "UNSTOP", "YES"})
HELP = frozenset({"HELP", "INFO"})

DEFAULT_REPLIES: dict[Keyword, str] = {
    "stop": "You are unsubscribed and will receive no more messages. Reply START to resubscribe.",
    "start": "You are subscribed to messages again. Reply STOP to unsubscribe, HELP for help.",
    "help": "Reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply.",
}
# X3, C13: what the person is told when their keyword did not take effect (a newer act of
# theirs is in force, or no profile has this number): the truth, and how to act now.
NOT_APPLIED: dict[str, str] = {
    "stop_not_applied": (
        "Your STOP arrived after a newer request to receive messages, so you are still "
        "subscribed. Reply STOP to unsubscribe now."
    ),
    "start_not_applied": (
        "Your START could not be applied, so you are not subscribed to messages. "
        "Reply START to try again, HELP for help."
    ),
}


def reply_kind(word: Keyword, states: Sequence[ProfileConsent]) -> Reply:
    """Which reply tells the truth about `states`, the consent of every profile on the
    number after the keyword (X3: a stale keyword is not confirmed as done). STOP is
    confirmed when no profile may get SMS any more; START when every profile (at least
    one) is subscribed to SMS marketing."""
    if word == "stop":
        slots = ("sms_marketing", "sms_transactional")
        subscribed = any(s.status(k) == "subscribed" for s in states for k in slots)
        return "stop_not_applied" if subscribed else "stop"
    if word == "start":
        ok = bool(states) and all(s.status("sms_marketing") == "subscribed" for s in states)
        return "start" if ok else "start_not_applied"
    return "help"


def keyword(body: str) -> Keyword | None:
    """The keyword a text is, case-insensitive and trimmed; None for any other text."""
    word = body.strip().upper()
    if word in STOP:
        return "stop"
    if word in START:
        return "start"
    if word in HELP:
        return "help"
    return None
