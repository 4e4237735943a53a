"""Who a message names (I1) and ids that cannot collide (X2). Pure.

I1: an email address or a phone number names one person however it is spelled. Every
lookup that protects a person (opt-outs, suppressions, erasure hashes, privacy requests,
recipient opt-ins) goes through `email_identity` / `phone_identity`, so an opt-out or an
erase recorded under one spelling holds under every other:

- email: Unicode NFC, surrounding blanks removed, the domain in lower case and in its
  IDNA (punycode) form, the local part compared case-insensitively (it keeps its case for
  sending; every large mailbox provider ignores it). `email-validator` does the parsing
  and the IDNA work; only what it cannot parse falls back to NFC and lower case, so two
  spellings of an unparseable value still meet.
- phone: E.164 by `phonenumbers`; a value it cannot parse falls back to `+` and digits.

X2: `derived_id` builds an id from free-text parts so that no two different part lists
give the same id (`"fx", "q:1E"` and `"fx:q", "1E"` used to meet).
"""

from __future__ import annotations

import functools
import unicodedata

import idna
from email_validator import EmailNotValidError, validate_email

from shared.addresses import _phone


@functools.lru_cache(maxsize=65536)
def email_identity(address: str | None) -> str | None:
    """The form every spelling of `address` is compared in (I1), or None for a blank.

    `Ada@Bücher.DE`, `ada@xn--bcher-kva.de`, ` ADA@bücher.de ` and the NFD spelling all
    give `ada@xn--bcher-kva.de`."""
    if address is None:
        return None
    text = unicodedata.normalize("NFC", address).strip()
    if not text:
        return None
    try:
        valid = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        local, at, domain = text.rpartition("@")
        if not at:
            return text.lower()
        return f"{local.lower()}@{_ascii_domain(domain)}"
    local = unicodedata.normalize("NFC", valid.local_part).lower()
    domain = valid.ascii_domain or _ascii_domain(valid.domain)
    return f"{local}@{domain}"


def _ascii_domain(domain: str) -> str:
    """The domain in lower case and, where IDNA can encode it, in punycode."""
    lowered = unicodedata.normalize("NFC", domain).strip().lower()
    try:  # IDNA 2008 with UTS 46, as email-validator does (`ß` stays `ß`: not `ss`)
        return idna.encode(lowered, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return lowered


@functools.lru_cache(maxsize=65536)
def phone_identity(number: str | None) -> str | None:
    """`number` in E.164 (I1), or None when it holds no digit. A value `phonenumbers`
    refuses (no country, impossible length) keeps `+` and its digits, so the same wrong
    value from two sources still names one number."""
    if number is None:
        return None
    text = unicodedata.normalize("NFKC", number).strip()
    e164, _ = _phone(text)
    if e164 is not None:
        return e164
    digits = "".join(ch for ch in text if ch.isdigit())
    return f"+{digits}" if digits else None


def same_email(a: str | None, b: str | None) -> bool:
    """Whether two spellings name one mailbox (I1); blanks name nobody."""
    key = email_identity(a)
    return key is not None and key == email_identity(b)


def derived_id(*parts: str) -> str:
    """An id made of `parts`, readable and unique by construction (X2): each part has
    `%` and `:` escaped before the parts are joined with `:`, so the id can be split
    back into exactly the parts it was made of."""
    return ":".join(p.replace("%", "%25").replace(":", "%3A") for p in parts)
