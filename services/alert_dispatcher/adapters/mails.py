"""The mails the dispatcher sends: recipient confirmations and alerts (A3–A5)."""

from __future__ import annotations

from email.message import Message
from html import escape
from urllib.parse import quote

from services.alert_dispatcher.domain.templates import render
from shared.contracts import AlertRequested
from shared.links import sign
from shared.mail import compose, message_id
from shared.settings import Settings

CONFIRM = "recipient-confirm"
UNSUBSCRIBE = "recipient-unsubscribe"


def link(settings: Settings, path: str, purpose: str, claims: dict) -> str:
    """A public link carrying a token signed for `purpose` (A4)."""
    token = sign(settings.link_secret.get_secret_value(), purpose, claims)
    return f"{settings.public_base_url.rstrip('/')}{path}?token={quote(token)}"


def confirmation(
    settings: Settings, account_id: str, email: str, generation: int, from_email: str
) -> Message:
    url = link(
        settings,
        "/links/recipients/confirm",
        CONFIRM,
        {"a": account_id, "e": email, "g": generation},
    )
    text = (
        f"You were added as a recipient of internal alerts for account {account_id}.\n\n"
        f"Confirm that you want to receive them:\n{url}\n\n"
        "If you did not expect this, ignore this email: you will receive nothing.\n"
    )
    return compose(
        mail_from=from_email,
        to=email,
        subject=f"Confirm internal alerts from {account_id}",
        text=text,
        msg_id=message_id("recipient-confirm", account_id, email, str(generation)),
    )


def alert(settings: Settings, request: AlertRequested, email: str, generation: int) -> Message:
    """One recipient's copy of an alert (A5): their own unsubscribe link in the footer and
    in `List-Unsubscribe` (RFC 8058 one-click POST), and a Message-ID fixed by (alert,
    recipient) so that a copy resent after a crash is recognisably the same mail (A9)."""
    action = request.action
    profile = request.profile.model_dump()
    unsubscribe = link(
        settings,
        "/links/recipients/unsubscribe",
        UNSUBSCRIBE,
        {"a": request.account_id, "e": email, "g": generation},
    )
    metric = request.trigger_type == "metric"
    subject = render(action.subject, profile, request.event, html=False, metric_flow=metric)
    text = render(action.body, profile, request.event, html=False, metric_flow=metric)
    html = render(action.body, profile, request.event, html=True, metric_flow=metric)
    footer_text = f"\n\n--\nStop receiving these alerts: {unsubscribe}\n"
    footer_html = f'<hr><p><a href="{escape(unsubscribe)}">Stop receiving these alerts</a></p>'
    return compose(
        mail_from=action.from_email,
        from_name=action.from_name,
        reply_to=action.reply_to,
        to=email,
        subject=subject,
        text=text + footer_text,
        html=f"<div>{html}</div>{footer_html}",
        msg_id=message_id("alert", request.alert_id, email),
        unsubscribe_url=unsubscribe,
    )
