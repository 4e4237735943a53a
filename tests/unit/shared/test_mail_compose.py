"""How composed mails look on the wire (A5, A9): what a receiving server parses back."""

from __future__ import annotations

from email import message_from_bytes, policy

from shared.mail import compose

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
