"""SMS keywords (C13). Pure."""

from __future__ import annotations

from typing import Literal

Keyword = Literal["stop", "start", "help"]

STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START = frozenset({"START", "UNSTOP", "YES"})
HELP = frozenset({"HELP", "INFO"})

DEFAULT_REPLIES: dict[Keyword, str] = {
    "stop": "You are unsubscribed and will receive no more messages. Reply START to resubscribe.",
    "start": "You are subscribed to messages again. Reply STOP to unsubscribe, HELP for help.",
    "help": "Reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply.",
}


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
