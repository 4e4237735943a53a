"""The mails the dispatcher sends: recipient confirmations and alerts (A3–A5)."""

from __future__ import annotations

from email.message import Message
from html import escape
from urllib.parse import quote

from services.alert_dispatcher.domain.templates import render
from shared.contracts import AlertRequested
from shared.links import sign
from shared.mail import compose, message_id
from shared.pages import button_mail, gettext, texts
from shared.pages.accounts import PageSettings
from shared.settings import Settings

CONFIRM = "recipient-confirm"
UNSUBSCRIBE = "recipient-unsubscribe"
DEFAULT_FROM = "no-reply@consentflow.local"


def link(settings: Settings, path: str, purpose: str, claims: dict) -> str:
    """A public link carrying a token signed for `purpose` (A4)."""
    token = sign(settings.link_signing_key, purpose, claims)
    return f"{settings.public_base_url.rstrip('/')}{path}?token={quote(token)}"


def confirmation(
    settings: Settings,
    account_id: str,
    email: str,
    generation: int,
    from_email: str,
    pages: PageSettings | None = None,
    renewal: str = "",
    to: str | None = None,
) -> Message:
    """A3, W3: the mail whose button confirms a new alert recipient. `email` is the
    recipient's key (I1), bound into the link; `to` the spelling mailed (default `email`)."""
    pages = pages or PageSettings()
    lang = pages.language or "en"
    brand = pages.brand(account_id)
    url = link(
        settings,
        "/links/recipients/confirm",
        CONFIRM,
        {"a": account_id, "e": email, "g": generation},
    )
    mail = button_mail(
        lang,
        brand,
        subject=gettext(lang, texts.MAIL_ALERTS_SUBJECT, name=brand.name),
        paragraphs=[gettext(lang, texts.MAIL_ALERTS_TEXT, name=brand.name)],
        button=gettext(lang, texts.ALERTS_CONFIRM_BUTTON),
        url=url,
        footnote=gettext(
            lang, texts.MAIL_ALERTS_FOOTNOTE, days=f"{settings.confirm_link_ttl_days:g}"
        ),
    )
    return compose(
        mail_from=from_email,
        from_name=pages.display_name,
        to=to or email,
        subject=mail.subject,
        text=mail.text,
        html=mail.html,
        msg_id=message_id(
            "recipient-confirm",
            account_id,
            email,
            str(generation) + renewal,
            domain=settings.mail_domain,
        ),
    )


def rendered(request: AlertRequested) -> tuple[str, str, str]:
    """(subject, text, html) of an alert: the same for every recipient, so rendered once.
    Raises TemplateBudgetExceeded for a template over its budget (A7)."""
    action = request.action
    profile = request.profile.model_dump()
    metric = request.trigger_type == "metric"
    return (
        render(action.subject, profile, request.event, html=False, metric_flow=metric),
        render(action.body, profile, request.event, html=False, metric_flow=metric),
        render(action.body, profile, request.event, html=True, metric_flow=metric),
    )


def alert(
    settings: Settings,
    request: AlertRequested,
    email: str,
    generation: int,
    language: str | None = None,
    parts: tuple[str, str, str] | None = None,
    to: str | None = None,
) -> Message:
    """One recipient's copy of an alert (A5): their own unsubscribe link in the footer and
    in `List-Unsubscribe` (RFC 8058 one-click POST), and a Message-ID fixed by (alert,
    recipient) so that a copy resent after a crash is recognisably the same mail (A9).
    `parts` is what `rendered` made (rendered here when not given). `email` is the
    recipient's key (I1), bound into the link; `to` the spelling mailed (default `email`)."""
    action = request.action
    unsubscribe = link(
        settings,
        "/links/recipients/unsubscribe",
        UNSUBSCRIBE,
        {"a": request.account_id, "e": email, "g": generation},
    )
    subject, text, html = parts if parts is not None else rendered(request)
    stop = gettext(language or "en", texts.ALERT_FOOTER)
    footer_text = f"\n\n--\n{stop}: {unsubscribe}\n"
    footer_html = f'<hr><p><a href="{escape(unsubscribe)}">{escape(stop)}</a></p>'
    return compose(
        mail_from=action.from_email,
        from_name=action.from_name,
        reply_to=action.reply_to,
        to=to or email,
        subject=subject,
        text=text + footer_text,
        html=f"<div>{html}</div>{footer_html}",
        msg_id=message_id("alert", request.alert_id, email, domain=settings.mail_domain),
        unsubscribe_url=unsubscribe,
    )
