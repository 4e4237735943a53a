"""The mails the dispatcher sends: recipient confirmations and alerts (A3–A5). `AlertMails`
is the use cases' `ports.MailComposer`: these functions with the service's settings (link
signing key, public URL, Message-ID domain) bound in."""

from __future__ import annotations

from email.message import Message
from html import escape
from urllib.parse import quote

from services.alert_dispatcher.domain.recipients import Recipient
from services.alert_dispatcher.domain.templates import rendered
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


class AlertMails:
    """`ports.MailComposer` over `settings`."""

    default_from = DEFAULT_FROM

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.operator_from = settings.smtp_username or "alerts@localhost"

    def confirmation(
        self,
        account_id: str,
        recipient: Recipient,
        from_email: str,
        pages: PageSettings | None,
        renewal: str = "",
    ) -> Message:
        r = recipient
        return confirmation(
            self._settings, account_id, r.email, r.generation, from_email, pages, renewal, r.mail_to
        )

    def alert(
        self,
        request: AlertRequested,
        recipient: Recipient,
        language: str | None,
        parts: tuple[str, str, str],
    ) -> Message:
        r = recipient
        return alert(self._settings, request, r.email, r.generation, language, parts, r.mail_to)
