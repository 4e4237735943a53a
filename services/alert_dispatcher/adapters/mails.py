"""The mails the dispatcher sends: recipient confirmations and alerts (A3–A5). `AlertMails`
is the use cases' `ports.MailComposer`: these functions with the service's settings (link
signing key, public URL, Message-ID domain) bound in."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import Message
from email.utils import formatdate
from html import escape
from urllib.parse import quote

from services.alert_dispatcher.domain.recipients import Recipient
from services.alert_dispatcher.domain.templates import rendered
from shared.contracts import AlertRequested
from shared.links import sign
from shared.mail import PreparedMail, compose, message_id
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
    """One recipient's copy of an alert (`alerts` for one recipient; `parts` rendered
    here when not given). `email` is the recipient's key (I1), bound into the link; `to`
    the spelling mailed (default `email`)."""
    parts = parts if parts is not None else rendered(request)
    return alerts(settings, request, [(email, generation, to or email)], language, parts)[0]


def alerts(
    settings: Settings,
    request: AlertRequested,
    recipients: Sequence[tuple[str, int, str]],
    language: str | None,
    parts: tuple[str, str, str],
) -> list[Message]:
    """Each recipient's copy of an alert (A5), `recipients` as (key, generation, address
    mailed): their own unsubscribe link in the footer and in `List-Unsubscribe` (RFC 8058
    one-click POST), and a Message-ID fixed by (alert, recipient) so that a copy resent
    after a crash is recognisably the same mail (A9). `parts` is what `rendered` made.

    The copies differ only from the footer's link on, so the mail is prepared once
    (`shared.mail.PreparedMail`: sender, subject, the bodies up to the link) and each
    copy is written from there, the same bytes `compose` would make of it."""
    action = request.action
    subject, text, html = parts
    stop = gettext(language or "en", texts.ALERT_FOOTER)
    prepared = PreparedMail(
        mail_from=action.from_email,
        from_name=action.from_name,
        reply_to=action.reply_to,
        subject=subject,
        text=f"{text}\n\n--\n{stop}: ",
        html=f'<div>{html}</div><hr><p><a href="',
    )
    stop_html = escape(stop)
    date = formatdate(usegmt=True)
    out: list[Message] = []
    for email, generation, to in recipients:
        unsubscribe = link(
            settings,
            "/links/recipients/unsubscribe",
            UNSUBSCRIBE,
            {"a": request.account_id, "e": email, "g": generation},
        )
        out.append(
            prepared.render(
                to=to,
                msg_id=message_id("alert", request.alert_id, email, domain=settings.mail_domain),
                text_end=f"{unsubscribe}\n",
                html_end=f'{escape(unsubscribe)}">{stop_html}</a></p>',
                unsubscribe_url=unsubscribe,
                date=date,
            )
        )
    return out


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

    def alerts(
        self,
        request: AlertRequested,
        recipients: Sequence[Recipient],
        language: str | None,
        parts: tuple[str, str, str],
    ) -> list[Message]:
        listed = [(r.email, r.generation, r.mail_to) for r in recipients]
        return alerts(self._settings, request, listed, language, parts)
