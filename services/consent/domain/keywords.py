"""SMS keywords (C13). Pure."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Literal

from services.consent.domain.model import ProfileConsent
from shared.domain.text import strip_invisible

Keyword = Literal["stop", "start", "help"]
Reply = Literal["stop", "start", "help", "stop_not_applied", "start_not_applied"]

# The keywords in case-folded form. STOP ALL and OPT OUT are also written as one word.
STOP = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
START = frozenset({"start", "unstop", "yes"})
HELP = frozenset({"help", "info"})
# Two-word keywords: hyphens and spaces between the words do not count.
TWO_WORDS = frozenset({("stop", "all"), ("opt", "out")})

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


def _separates(char: str) -> bool:
    """Whitespace or a dash (category Pd: hyphen-minus, hyphen, en dash…)."""
    return char.isspace() or unicodedata.category(char) == "Pd"


def _trailing(char: str) -> bool:
    """Punctuation (category P*) or whitespace, dropped from the end of a text."""
    return char.isspace() or unicodedata.category(char).startswith("P")


def keyword(body: str) -> Keyword | None:
    """The keyword a text is (C13); None for any other text.

    The text is taken in Unicode compatibility form (NFKC) without ignorable characters
    (zero-width, format, Default_Ignorable: `strip_invisible`), trimmed; then the
    punctuation (P*) and whitespace at its end are dropped and it is case-folded. What is
    left must be one keyword, or the two words of STOP ALL or OPT OUT separated by any run
    of whitespace and dashes. Punctuation at the start, anything before or after the
    keyword, and a second word are not ignored: "¿STOP", "STOP me", "don't stop" and
    "STOPS" are no keywords."""
    text = strip_invisible(body)
    end = len(text)
    while end and _trailing(text[end - 1]):
        end -= 1
    text = text[:end].casefold()
    if not text or _separates(text[0]):
        return None
    words = "".join(" " if _separates(c) else c for c in text).split()
    if len(words) == 2 and (words[0], words[1]) in TWO_WORDS:
        word = words[0] + words[1]
    elif len(words) == 1:
        word = words[0]
    else:
        return None
    if word in STOP:
        return "stop"
    if word in START:
        return "start"
    if word in HELP:
        return "help"
    return None
