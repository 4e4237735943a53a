"""Signed links (C12) and the double opt-in confirmation email (C8)."""

from __future__ import annotations

from email.message import Message
from typing import Any
from urllib.parse import quote

from shared.links import sign
from shared.mail import compose, message_id
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
    token = sign(settings.link_secret.get_secret_value(), purpose, claims)
    return f"{settings.public_base_url.rstrip('/')}{PATHS[purpose]}?token={quote(token)}"


def profile_links(
    settings: Settings,
    account_id: str,
    profile_id: str,
    scope: str = "group",
    list_id: str | None = None,
) -> dict[str, str]:
    """The unsubscribe and preference-centre links to put in a mail to a profile."""
    base = {"a": account_id, "p": profile_id, "c": "email", "s": scope}
    return {
        "unsubscribe_url": link(settings, UNSUBSCRIBE, {**base, "l": list_id}),
        "preferences_url": link(settings, PREFERENCES, {**base, "s": "group", "l": None}),
    }


def confirmation(
    settings: Settings,
    *,
    confirmation_id: str,
    account_id: str,
    profile_id: str,
    email: str,
    list_id: str | None,
    scope: str,
    mail_from: str,
) -> Message:
    """C8: the email whose signed link makes the subscription real."""
    claims = {
        "a": account_id,
        "p": profile_id,
        "c": "email",
        "l": list_id,
        "s": scope,
        "k": confirmation_id,
    }
    url = link(settings, CONFIRM, claims)
    what = f"the list {list_id}" if list_id else "our emails"
    text = (
        f"Please confirm that you want to receive {what}.\n\n"
        f"Confirm your subscription:\n{url}\n\n"
        "If you did not ask for this, ignore this email: you will not be subscribed.\n"
    )
    return compose(
        mail_from=mail_from,
        to=email,
        subject="Please confirm your subscription",
        text=text,
        msg_id=message_id("consent-confirm", confirmation_id),
    )
