"""Signed links (C12) and the mails the consent service sends: the double opt-in
confirmation (C8, W3) and the optional opt-out confirmation with a way back in (W3)."""

from __future__ import annotations

from email.message import Message
from typing import Any
from urllib.parse import quote

from services.consent.ports import AccountSettings, Confirmation, Key
from shared.links import sign
from shared.mail import compose, message_id
from shared.pages import button_mail, gettext, texts
from shared.pages.accounts import PageSettings
from shared.ports import OutgoingMail
from shared.settings import Settings

CONFIRM = "consent-confirm"
UNSUBSCRIBE = "consent-unsubscribe"
PREFERENCES = "consent-preferences"

PATHS = {
    CONFIRM: "/links/consent/confirm",
    UNSUBSCRIBE: "/links/consent/unsubscribe",
    PREFERENCES: "/links/consent/preferences",
}
DEFAULT_FROM = "no-reply@consentflow.local"


def link(settings: Settings, purpose: str, claims: dict[str, Any]) -> str:
    """An absolute link carrying a token signed for `purpose` (C12)."""
    token = sign(settings.link_signing_key, purpose, claims)
    return f"{settings.public_base_url.rstrip('/')}{PATHS[purpose]}?token={quote(token)}"


def profile_links(
    settings: Settings,
    account_id: str,
    profile_id: str,
    scope: str = "group",
    list_id: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
) -> dict[str, str]:
    """The unsubscribe and preference-centre links to put in a mail to a profile. The
    preference link names the client and sender the mail was sent for, so that the page
    can offer an opt-out at each level (C10, W2)."""
    base = {"a": account_id, "p": profile_id, "c": "email", "s": scope}
    prefs = {**base, "s": "group", "l": None}
    if client_id:
        prefs["cl"] = client_id
        if user_id:
            prefs["u"] = user_id
    return {
        "unsubscribe_url": link(settings, UNSUBSCRIBE, {**base, "l": list_id}),
        "preferences_url": link(settings, PREFERENCES, prefs),
    }


def confirmation(
    settings: Settings,
    *,
    confirmation_id: str,
    account_id: str,
    profile_id: str,
    email: str,
    list_id: str | None,
    scope: str | None,
    mail_from: str,
    pages: PageSettings | None = None,
) -> Message:
    """C8, W3: the email whose button (a signed link) makes the subscription real."""
    pages = pages or PageSettings()
    lang = pages.language or "en"
    brand = pages.brand(account_id)
    claims = {
        "a": account_id,
        "p": profile_id,
        "c": "email",
        "l": list_id,
        "s": scope,
        "k": confirmation_id,
    }
    url = link(settings, CONFIRM, claims)
    if list_id:
        ask = gettext(
            lang, texts.MAIL_CONFIRM_TEXT_LIST, list=pages.list_name(list_id), name=brand.name
        )
    else:
        ask = gettext(lang, texts.MAIL_CONFIRM_TEXT, name=brand.name)
    mail = button_mail(
        lang,
        brand,
        subject=gettext(lang, texts.MAIL_CONFIRM_SUBJECT),
        paragraphs=[ask],
        button=gettext(lang, texts.MAIL_CONFIRM_BUTTON),
        url=url,
        footnote=gettext(
            lang, texts.MAIL_CONFIRM_FOOTNOTE, days=f"{settings.confirm_link_ttl_days:g}"
        ),
    )
    return compose(
        mail_from=mail_from,
        from_name=pages.display_name,
        to=email,
        subject=mail.subject,
        text=mail.text,
        html=mail.html,
        msg_id=message_id("consent-confirm", confirmation_id, domain=settings.mail_domain),
    )


def opt_out_confirmation(
    settings: Settings,
    *,
    account_id: str,
    profile_id: str,
    email: str,
    act_id: str,
    mail_from: str,
    pages: PageSettings,
) -> Message:
    """W3: the optional "you are unsubscribed" mail; its button opens the preference
    centre, where the person can subscribe again (their own click, C11)."""
    lang = pages.language or "en"
    brand = pages.brand(account_id)
    url = profile_links(settings, account_id, profile_id)["preferences_url"]
    mail = button_mail(
        lang,
        brand,
        subject=gettext(lang, texts.MAIL_OPTOUT_SUBJECT),
        paragraphs=[gettext(lang, texts.MAIL_OPTOUT_TEXT, name=brand.name)],
        button=gettext(lang, texts.MAIL_OPTOUT_BUTTON),
        url=url,
        footnote=gettext(lang, texts.MAIL_OPTOUT_FOOTNOTE),
    )
    return compose(
        mail_from=mail_from,
        from_name=pages.display_name,
        to=email,
        subject=mail.subject,
        text=mail.text,
        html=mail.html,
        msg_id=message_id("consent-optout", act_id, domain=settings.mail_domain),
    )


class ConsentMailer:
    """`ConsentMails` (services/consent/ports.py): the mails above, addressed from the
    account's sender and ready for the queue, signed with the service's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def confirmation(
        self, c: Confirmation, acct: AccountSettings, pages: PageSettings | None
    ) -> OutgoingMail:
        mail_from = acct.from_email or DEFAULT_FROM
        msg = confirmation(
            self.settings,
            confirmation_id=c.confirmation_id,
            account_id=c.account_id,
            profile_id=c.profile_id,
            email=c.email,
            list_id=c.list_id,
            scope=c.scope,
            mail_from=mail_from,
            pages=pages,
        )
        return OutgoingMail(
            dedupe_key=f"consent-confirm:{c.confirmation_id}",
            kind="consent-confirmation",
            account_id=c.account_id,
            message=msg,
            mail_from=mail_from,
            rcpt_to=msg["To"],
        )

    def opt_out(
        self, key: Key, email: str, act_id: str, acct: AccountSettings, pages: PageSettings
    ) -> OutgoingMail:
        mail_from = acct.from_email or DEFAULT_FROM
        msg = opt_out_confirmation(
            self.settings,
            account_id=key.account_id,
            profile_id=key.profile_id,
            email=email,
            act_id=act_id,
            mail_from=mail_from,
            pages=pages,
        )
        return OutgoingMail(
            dedupe_key=f"consent-optout:{act_id}",
            kind="consent-optout",
            account_id=key.account_id,
            message=msg,
            mail_from=mail_from,
            rcpt_to=email,
        )
