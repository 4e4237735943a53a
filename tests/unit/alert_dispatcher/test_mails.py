"""The dispatcher's mails read with Python's email parser (W1, W3, A4)."""

from __future__ import annotations

from email import message_from_bytes, policy

from services.alert_dispatcher.adapters import mails
from shared.contracts import AlertContent, AlertRequested, Profile
from shared.pages.accounts import PageSettings
from shared.settings import Settings

SETTINGS = Settings(
    link_secret="unit-test-secret-0123456789abcdef",
    public_base_url="https://links.acme.test",
    message_id_domain="mail.acme.test",
)


def _parse(msg) -> object:
    return message_from_bytes(msg.as_bytes(), policy=policy.default)


def test_w1_a4_alert_footer_in_the_accounts_language_with_one_click_headers() -> None:
    req = AlertRequested(
        alert_id="al-1",
        account_id="acme",
        flow_id="nps",
        flow_version=1,
        step_id="alert",
        profile_id="p-1",
        profile=Profile(id="p-1", email="ada@example.test", first_name="Ada"),
        event={"score": 3},
        action=AlertContent(
            recipients=["lead@acme.test"],
            from_email="alerts@acme.test",
            subject="Detractor",
            body="{{ person.first_name }} scored {{ event.score }}",
        ),
        trigger_type="metric",
    )
    mail = _parse(mails.alert(SETTINGS, req, "lead@acme.test", 1, "de"))
    text = mail.get_body(("plain",)).get_content()
    assert "Diese Benachrichtigungen abbestellen: https://links.acme.test/links/recipients/" in text
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Unsubscribe"].startswith("<https://links.acme.test/links/recipients/")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith("@mail.acme.test>")


def test_w3_recipient_confirmation_is_multipart_with_a_button() -> None:
    pages = PageSettings(display_name="Acme", language="de")
    mail = _parse(mails.confirmation(SETTINGS, "acme", "lead@acme.test", 2, "a@acme.test", pages))
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Subject"] == "Interne Benachrichtigungen von Acme bestätigen"
    html = mail.get_body(("html",)).get_content()
    assert '<a href="https://links.acme.test/links/recipients/confirm?token=' in html
    assert "Benachrichtigungen bestätigen</a>" in html
    assert mail["Message-ID"].endswith("@mail.acme.test>")
