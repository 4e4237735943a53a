"""A reference model of people, not records (I1, C6, C11, C13, X3), for tests only.

Written from SPEC, not from the production code. An account holds profiles; a person is
whoever an address or a number names, however it is spelled (I1: email in NFC with the
domain in lower-case punycode and the local part compared case-insensitively, by
`email-validator`; numbers in E.164, by `phonenumbers`, the libraries SPEC names).
Several profiles may carry one address or one number; a number may text before any
profile has it.

To answer for a profile: take its own acts, add every act made *for an identity it
carries* (I1, C6): each SMS opt-out made under any profile for that number, every
keyword the number sent (STOP and START are the number's own acts), each email opt-out
made under any profile for that address, and fold them all in time order with the
single-profile model (`reference.ConsentModel`). Nothing else crosses profiles: a
subscribe of one profile never subscribes another.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, replace

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from tests.model.reference import ConsentModel, Received


def email_key(address: str) -> str:
    """I1's one form of an address, by email-validator."""
    text = unicodedata.normalize("NFC", address).strip()
    try:
        valid = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return text.lower()
    local = unicodedata.normalize("NFC", valid.local_part).lower()
    return f"{local}@{valid.ascii_domain}"


def phone_key(number: str) -> str:
    """I1's one form of a number: E.164, by phonenumbers (`00` as the leading `+`)."""
    text = unicodedata.normalize("NFKC", number).strip()
    if text.startswith("00"):  # the international prefix written out
        text = "+" + text[2:]
    parsed = phonenumbers.parse(text, None)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def upper_case(text: str) -> str:
    """`text` in upper case where that is a spelling of the same address: a letter whose
    upper case is not one letter that maps back (`ß` -> `SS`) is kept, since `STRASSE`
    and `straße` are two domains under IDNA 2008."""
    return "".join(u if len(u := c.upper()) == 1 and u.lower() == c else c for c in text)


@dataclass(frozen=True)
class ProfileCard:
    """One profile and the spellings it arrives with (fixed for the profile)."""

    profile_id: str
    email: str | None
    phone: str | None


@dataclass
class PeopleModel:
    """Every act of one account, whoever it names; answers per profile."""

    profiles: dict[str, ProfileCard] = field(default_factory=dict)
    own: dict[str, list[Received]] = field(default_factory=dict)
    number_acts: dict[str, list[Received]] = field(default_factory=dict)
    address_acts: dict[str, list[Received]] = field(default_factory=dict)

    def act(self, card: ProfileCard, act: Received) -> None:
        """An act a producer sent for a profile (it carries the profile's number)."""
        self.profiles.setdefault(card.profile_id, card)
        phone = phone_key(card.phone) if card.phone else None
        act = replace(act, phone=phone)
        self.own.setdefault(card.profile_id, []).append(act)
        if act.action != "unsubscribe" or _odd(act):
            return
        if act.channel == "sms" and phone:
            # C6: the opt-out holds for the number, for every profile carrying it.
            self.number_acts.setdefault(phone, []).append(replace(act, number_only=True))
        if act.channel == "email" and card.email:
            self.address_acts.setdefault(email_key(card.email), []).append(replace(act, phone=None))

    def keyword(self, number: str, act: Received) -> None:
        """STOP or START from a number (C13): the number's own act (C6)."""
        key = phone_key(number)
        self.number_acts.setdefault(key, []).append(replace(act, phone=key, number_only=True))

    def carried(self, profile_id: str) -> list[Received]:
        """What reaches a profile: its own acts and those of what it carries."""
        card = self.profiles[profile_id]
        acts = list(self.own.get(profile_id, []))
        if card.phone:
            acts += self.number_acts.get(phone_key(card.phone), [])
        if card.email:
            acts += self.address_acts.get(email_key(card.email), [])
        return acts

    def answer(self, profile_id: str) -> tuple[dict[str, str], str | None]:
        model = ConsentModel()
        for a in self.carried(profile_id):
            model.receive(a)
        return model.answer()

    def reachable(self, profile_id: str) -> dict[str, bool]:
        """Per channel, whether consent lets a message go (S6 without suppressions):
        email unless unsubscribed; SMS and push only when subscribed."""
        status, _ = self.answer(profile_id)
        return reachable(status)


def reachable(status: dict[str, str]) -> dict[str, bool]:
    """S6 over consent alone: email unless unsubscribed; SMS marketing and push only
    when subscribed; transactional SMS with either SMS purpose subscribed (C5)."""
    sms = status.get("sms_marketing") == "subscribed"
    return {
        "email": status.get("email", "never_subscribed") != "unsubscribed",
        "sms_marketing": sms,
        "sms_transactional": sms or status.get("sms_transactional") == "subscribed",
        "push": status.get("push") == "subscribed",
    }


def _odd(a: Received) -> bool:
    """X3a: combinations nobody applies (lists and scopes are email only)."""
    return a.channel != "email" and (a.list_id is not None or a.scope != "group")
