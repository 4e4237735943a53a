"""Email addresses and phone numbers checked at the edge, by maintained libraries.

Every address that can reach an SMTP envelope or a header (profile emails, alert
recipients, from and reply-to) passes `email-validator` when it enters the system, and
every phone number is parsed by `phonenumbers` and kept in E.164. A bad value is refused
with its reason where it arrives (422 on the API, the dead-letter topic on Kafka), so it
can never reach a worker that would choke on it later.
"""

from __future__ import annotations

import functools
import importlib

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# The module, not the function the package exports under the same name.
_validate_email_module = importlib.import_module("email_validator.validate_email")


def _remember_domain_checks() -> None:
    """email-validator checks an address's domain (the IDNA 2008 / UTS 46 mapping, each
    label, the special-use names) in one step, `validate_email_domain_name`: about two
    thirds of its time per address (10 of 16 µs here). That step's answer depends on the
    domain and two flags alone, and an address seen for the first time nearly always has
    a domain seen before. So the step is remembered where `validate_email` looks it up,
    for every check in the process. Its answer is a dict that `validate_email` only reads;
    a refused domain raises, and is checked again each time. Should a release of the
    library move the step, nothing is replaced and every address is checked in full, as
    before; `tests/unit/shared/test_addresses_domain_cache.py` holds the answers equal to
    the library's own for every spelling."""
    step = getattr(_validate_email_module, "validate_email_domain_name", None)
    if callable(step) and not hasattr(step, "cache_info"):
        _validate_email_module.validate_email_domain_name = functools.lru_cache(maxsize=4096)(step)


_remember_domain_checks()


@functools.lru_cache(maxsize=65536)
def email_error(address: str) -> str | None:
    """Why `address` is not a syntactically valid email address, or None.

    Cached: every alert request checks its action's recipients again (a request from a
    rejected flow version must not widen them), and they are nearly always the same few;
    a profile's address is checked on every message about it.

    Syntax only: no DNS lookup, and reserved test domains (`.test`, `.example`) are
    accepted because self-hosted installations and their tests use them. Control
    characters are refused outright: they are never part of an address, and in an
    envelope or header they would start a new command or header line."""
    if any(ord(c) < 32 or ord(c) == 127 for c in address):
        return "the address contains a control character"
    try:
        validate_email(address.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def checked_email(address: str) -> str:
    """`address` stripped of surrounding blanks; ValueError with the reason if invalid."""
    if problem := email_error(address):
        raise ValueError(f"{address!r} is not a valid email address: {problem}")
    return address.strip()


def e164_phone(number: str) -> str:
    """`number` in E.164 (`+1 555-555-0100` -> `+15555550100`); ValueError if it is not
    an international number of a possible length. Without a leading `+` (or `00`) the
    country is unknown, so the number is refused rather than guessed."""
    e164, problem = _phone(number)
    if problem is not None:
        raise ValueError(problem)
    assert e164 is not None
    return e164


@functools.lru_cache(maxsize=65536)
def _phone(number: str) -> tuple[str | None, str | None]:
    """`e164_phone`'s answer: (E.164, None) or (None, why not). Cached: parsing a number
    costs as much as parsing the whole message it came in, and the same profile's
    number is checked on every message about it (the input, then each output it causes).
    """
    raw = number.strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        return None, f"{number!r} is not a phone number in international form: {exc}"
    if not phonenumbers.is_possible_number(parsed):
        return None, f"{number!r} is not a possible phone number"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None
