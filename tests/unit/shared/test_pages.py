"""Pages and tokens without a service: canonical token encoding (C12), the message
catalogues (W1), language choice (W1), accent contrast (W1) and one-button mails (W3)."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import strategies as st

from shared.links import InvalidToken, sign, verify
from shared.mail import compose, message_id
from shared.pages import Brand, button_mail, contrast, negotiate, render
from shared.pages import accounts as page_accounts

LOCALE = Path(__file__).resolve().parents[3] / "shared" / "pages" / "locale"

claims = st.dictionaries(
    st.sampled_from(["a", "p", "c", "l", "s", "k"]), st.text(max_size=20), min_size=1
)


def _variants(token: str) -> list[str]:
    """Strings that Python's base64 decoder reads as the same bytes as `token`'s parts."""
    body, mac = token.split(".")
    out = [f"{body}=.{mac}", f"{body}.{mac}=", f"{body}.{mac}\n", f" {body}.{mac}"]
    out += [f"{body[:1]}!{body[1:]}.{mac}", f"{body}.{mac[:3]}*{mac[3:]}"]
    # The last character of an unpadded group carries spare bits: flip them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    for spare in range(1, 4):
        twin = mac[:-1] + alphabet[last ^ spare]
        if base64.urlsafe_b64decode(twin + "=" * (-len(twin) % 4)) == base64.urlsafe_b64decode(
            mac + "=" * (-len(mac) % 4)
        ):
            out.append(f"{body}.{twin}")
    return out


@given(claims)
def test_c12_only_the_canonical_encoding_of_a_genuine_token_is_accepted(c: dict) -> None:
    token = sign("s3cret", "consent-confirm", c)
    assert verify("s3cret", "consent-confirm", token) == c
    for variant in _variants(token):
        with pytest.raises(InvalidToken):
            verify("s3cret", "consent-confirm", variant)


def test_c12_spare_bits_twin_of_a_known_token_is_rejected() -> None:
    """Shrunk from the property above: a MAC whose last character differs only in the
    bits base64 ignores decodes to the same digest, and is still refused."""
    token = sign("s3cret", "p", {"a": "acme"})
    twins = [v for v in _variants(token) if "=" not in v and "!" not in v and "*" not in v]
    assert any(v.strip() == v for v in twins)
    for twin in twins:
        with pytest.raises(InvalidToken):
            verify("s3cret", "p", twin)


def test_w1_german_catalogue_is_complete_and_compiled() -> None:
    template = read_po((LOCALE / "messages.pot").open("rb"))
    german = read_po((LOCALE / "de" / "LC_MESSAGES" / "messages.po").open("rb"))
    compiled = read_mo((LOCALE / "de" / "LC_MESSAGES" / "messages.mo").open("rb"))
    ids = {m.id for m in template if m.id}
    assert ids, "empty template"
    assert ids == {m.id for m in german if m.id}, "run pybabel update (see docs/pages.md)"
    for m in german:
        if m.id:
            assert m.string and not m.fuzzy, m.id
            assert compiled.get(m.id) is not None, f"run pybabel compile: {m.id}"
            assert compiled.get(m.id).string == m.string, f"run pybabel compile: {m.id}"


@pytest.mark.parametrize(
    ("header", "account", "want"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", None, "de"),
        ("fr-CH, fr;q=0.9, de;q=0.7, en;q=0.8", None, "en"),
        ("fr, de;q=0.5", None, "de"),
        ("", None, "en"),
        (None, None, "en"),
        ("de", "en", "en"),
        ("en", "de", "de"),
        ("de;q=abc, en;q=0", None, "en"),
    ],
)
def test_w1_language_is_the_accounts_else_the_browsers(header, account, want) -> None:
    assert negotiate(header, account) == want


@given(st.from_regex(r"#[0-9a-f]{6}", fullmatch=True))
def test_w1_button_text_on_any_accent_colour_meets_aa_contrast(colour: str) -> None:
    brand = Brand("Acme", accent=colour)
    assert contrast(colour, brand.on_accent) >= 4.5


def test_w1_page_settings_are_validated() -> None:
    assert page_accounts.errors({"accent_colour": "#12ab3F", "language": "de"}) == []
    assert page_accounts.errors({"accent_colour": "red"})
    assert page_accounts.errors({"logo_url": "http://acme.test/logo.png"})
    assert page_accounts.errors({"logo_url": "javascript:alert(1)"})
    assert page_accounts.errors({"language": "fr"})
    assert page_accounts.errors({"support_email": "not an address"})
    assert page_accounts.errors({"display_name": "Acme\nBcc: x@y.test"})
    assert page_accounts.errors({"list_names": {"news": 3}})


def test_w1_pages_escape_account_values_and_say_their_language() -> None:
    brand = Brand("<b>Acme</b>", support_email="help@acme.test")
    html = render("message.html", "de", brand, title="T", paragraphs=["<i>x</i>"], forms=[])
    assert '<html lang="de">' in html
    assert "<b>Acme</b>" not in html and "&lt;b&gt;Acme&lt;/b&gt;" in html
    assert "<i>x</i>" not in html
    assert 'Fragen? Schreiben Sie an <a href="mailto:help@acme.test">' in html


def test_w3_one_button_mail_is_multipart_automated_and_parses() -> None:
    url = "https://links.acme.test/links/consent/confirm?token=abc.def"
    mail = button_mail(
        "de",
        Brand("Acme"),
        subject="Bitte bestätigen",
        paragraphs=["Hallo"],
        button="Anmeldung bestätigen",
        url=url,
    )
    raw = compose(
        mail_from="news@acme.test",
        to="ada@example.test",
        subject=mail.subject,
        text=mail.text,
        html=mail.html,
        msg_id=message_id("x", domain="mail.acme.test"),
    ).as_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Message-ID"].endswith("@mail.acme.test>")
    assert parsed["Subject"] == "Bitte bestätigen"
    assert url in parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert f'<a href="{url}"' in html and "Anmeldung bestätigen</a>" in html
