"""I1, X1: with email-validator's domain step remembered (`shared.addresses`), every
address gets the library's own answer, accepted or refused with the same reason, for
every spelling: IDN and punycode domains, upper case and full-width letters, NFD,
zero-width characters, trailing dots, special-use and invalid domains, IP literals, and
the same domain again under other local parts (where the remembered answer is used)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

import shared.addresses  # noqa: F401  (remembers the domain step)

MODULE = importlib.import_module("email_validator.validate_email")

LOCAL = st.sampled_from(
    ["ada", "Ada.Lovelace", "zoë", "zoe\u0308", "ａｄａ", "a\u200bb", '"a b"', "a..b", "", "x" * 65]
) | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
DOMAIN = st.sampled_from(
    [
        "example.com",
        "EXAMPLE.COM",
        "example.com.",
        "bücher.example",
        "xn--bcher-kva.example",
        "BÜCHER.example",
        "bu\u0308cher.example",
        "ｅｘａｍｐｌｅ.com",
        "exa\u200bmple.com",
        "mail.consentflow.test",
        "localhost",
        "local",
        "under_score.com",
        "underscore.com",
        "-lead.com",
        "a" * 64 + ".com",
        "[127.0.0.1]",
        "[IPv6:::1]",
        "",
        "com",
        "日本.jp",
    ]
) | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10)


def _answer(address: str) -> tuple[str, Any]:
    try:
        found = validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return ("refused", str(exc))
    return ("accepted", dict(vars(found)))


def test_the_domain_step_is_remembered() -> None:
    assert hasattr(MODULE.validate_email_domain_name, "cache_info")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(LOCAL, DOMAIN), min_size=1, max_size=6))
def test_i1_x1_every_address_gets_the_librarys_own_answer_with_domains_remembered(
    pairs: list[tuple[str, str]],
) -> None:
    addresses = [f"{local}@{domain}" for local, domain in pairs]
    remembered = [_answer(a) for a in addresses] + [_answer(a) for a in addresses]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            MODULE,
            "validate_email_domain_name",
            MODULE.validate_email_domain_name.__wrapped__,
        )
        own = [_answer(a) for a in addresses]
    assert remembered == own + own
