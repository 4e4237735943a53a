"""How composed mails look on the wire (A5, A9): what a receiving server parses back."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import Message
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import shared.mail as mail_module
from shared.mail import PreparedMail, compose

URL = "http://127.0.0.1:8000/links/recipients/unsubscribe?token=" + "t" * 300


def _roundtrip(**overrides: str):
    fields = {
        "mail_from": "alerts@acme.test",
        "to": "oncall@acme.test",
        "subject": "Détracteur Zoë 🚨 " + "long " * 40,
        "text": "Zoë scored 0\n" + URL,
        "html": "<p>Zoë scored 0</p>",
        "msg_id": "<abc@consentflow.local>",
        "from_name": "Zoë's alerts",
        "unsubscribe_url": URL,
    }
    raw = compose(**{**fields, **overrides}).as_bytes()
    return raw, message_from_bytes(raw, policy=policy.default), fields


def test_a5_non_ascii_headers_and_bodies_survive_the_wire_and_lines_stay_legal() -> None:
    raw, mail, sent = _roundtrip()
    assert str(mail["Subject"]) == sent["subject"]
    assert mail["From"].addresses[0].display_name == "Zoë's alerts"
    assert mail.get_body(("plain",)).get_content().rstrip() == sent["text"]
    assert mail.get_body(("html",)).get_content().rstrip() == sent["html"]
    assert raw.isascii()  # 7-bit clean: encoded-words and quoted-printable
    assert max(len(line) for line in raw.splitlines()) <= 998  # RFC 5322 2.1.1


def test_a5_one_click_unsubscribe_header_parses_back_exactly() -> None:
    _, mail, _ = _roundtrip()
    assert mail["List-Unsubscribe"] == f"<{URL}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a5_a_line_break_in_a_non_ascii_subject_adds_no_header() -> None:
    _, mail, _ = _roundtrip(subject="Zoë\r\nBcc: evil@x.test")
    assert mail["Bcc"] is None
    assert "evil@x.test" in str(mail["Subject"])


# --- PreparedMail: the same bytes as compose, written per recipient ---------------------

# Line breaks of every kind, controls, spaces at line ends, non-ASCII and lone surrogates:
# what a tenant's template or a profile could put into a mail.
_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("\r\n \t=.-\x0b\x0c\x1c\x85\u2028\xa0é🚨\udc80\ud800"),
        st.characters(codec="utf-8"),
    ),
    max_size=300,
)
_LONG = st.builds(
    lambda a, n: a * n, st.sampled_from(["x", "é", " ", "a b", "=\n", "\r"]), st.integers(0, 1200)
)
_VALUE = st.one_of(_TEXT, _LONG)
DATE = "Sun, 06 Dec 2026 22:31:52 GMT"


def _composed(**fields: Any) -> Message | str:
    """compose's mail with the Date pinned, or the name of the error it refuses it with."""
    kept = mail_module.formatdate
    mail_module.formatdate = lambda **_: DATE
    try:
        composed = compose(**fields)
        composed.as_bytes()
        return composed
    except Exception as exc:
        return type(exc).__name__
    finally:
        mail_module.formatdate = kept


@settings(max_examples=200, deadline=None)
@given(
    mail_from=_VALUE,
    subject=_VALUE,
    text=_VALUE,
    text_end=_VALUE,
    html=st.none() | _VALUE,
    html_end=_VALUE,
    from_name=st.none() | _VALUE,
    reply_to=st.none() | _VALUE,
    copies=st.lists(st.tuples(_VALUE, _VALUE, st.none() | _VALUE), min_size=1, max_size=3),
)
def test_a5_a9_each_copy_of_a_prepared_mail_is_what_compose_writes(
    mail_from: str,
    subject: str,
    text: str,
    text_end: str,
    html: str | None,
    html_end: str,
    from_name: str | None,
    reply_to: str | None,
    copies: list[tuple[str, str, str | None]],
) -> None:
    """Every copy a PreparedMail renders is byte for byte what compose makes of the whole
    texts, with the same headers to read (or both refuse the mail, with the same error)."""
    common = {"mail_from": mail_from, "subject": subject, "from_name": from_name}
    try:
        prepared: PreparedMail | str = PreparedMail(
            **common, text=text, html=html, reply_to=reply_to
        )
    except Exception as exc:
        prepared = type(exc).__name__
    for to, msg_id, url in copies:
        expected = _composed(
            **common,
            to=to,
            text=text + text_end,
            html=None if html is None else html + html_end,
            msg_id=msg_id,
            reply_to=reply_to,
            unsubscribe_url=url,
        )
        if isinstance(prepared, str):
            assert expected == prepared
            continue
        try:
            copy: Message | str = prepared.render(
                to=to,
                msg_id=msg_id,
                text_end=text_end,
                html_end=html_end,
                unsubscribe_url=url,
                date=DATE,
            )
        except Exception as exc:
            copy = type(exc).__name__
        if isinstance(expected, str) or isinstance(copy, str):
            assert copy == expected
            continue
        assert copy.as_bytes() == expected.as_bytes()
        assert copy.items() == expected.items()
