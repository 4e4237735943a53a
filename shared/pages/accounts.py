"""An account's page settings (W1–W3): branding, language, list names and the optional
opt-out confirmation mail, stored in the service's own `account_pages` table and set
through the service's account settings API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from shared.db import account_pages
from shared.mail import email_error
from shared.pages import DEFAULT_ACCENT, LANGUAGES, Brand, colour_error

FIELDS = (
    "display_name",
    "logo_url",
    "accent_colour",
    "support_email",
    "language",
    "list_names",
    "optout_confirmation_email",
)


@dataclass(frozen=True)
class PageSettings:
    display_name: str | None = None
    logo_url: str | None = None
    accent_colour: str | None = None
    support_email: str | None = None
    language: str | None = None
    list_names: dict[str, str] = field(default_factory=dict)
    optout_confirmation_email: bool = False

    def brand(self, account_id: str) -> Brand:
        return Brand(
            name=self.display_name or account_id,
            logo_url=self.logo_url,
            accent=self.accent_colour or DEFAULT_ACCENT,
            support_email=self.support_email,
        )

    def list_name(self, list_id: str) -> str:
        return self.list_names.get(list_id) or list_id

    def view(self) -> dict[str, Any]:
        return {
            "display_name": self.display_name,
            "logo_url": self.logo_url,
            "accent_colour": self.accent_colour or DEFAULT_ACCENT,
            "support_email": self.support_email,
            "language": self.language,
            "list_names": self.list_names,
            "optout_confirmation_email": self.optout_confirmation_email,
        }


def errors(values: dict[str, Any]) -> list[str]:
    """Why `values` (a subset of FIELDS; null clears a field) cannot be saved."""
    out = []

    def text(name: str, limit: int) -> str | None:
        value = values.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            out.append(f"{name} must be a non-empty string of at most {limit} characters")
            return None
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            out.append(f"{name} must not contain control characters")
            return None
        return value

    text("display_name", 100)
    if (logo := text("logo_url", 2000)) is not None:
        parts = urlsplit(logo)
        if parts.scheme != "https" or not parts.hostname:
            out.append("logo_url must be an https:// URL")
    if (colour := text("accent_colour", 7)) is not None and (why := colour_error(colour)):
        out.append(why)
    if (email := text("support_email", 254)) is not None and (why := email_error(email)):
        out.append(f"support_email: {why}")
    if values.get("language") is not None and values["language"] not in LANGUAGES:
        out.append(f"language must be one of {', '.join(LANGUAGES)} or null")
    names = values.get("list_names")
    if names is not None and not (
        isinstance(names, dict)
        and len(names) <= 200
        and all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 100
            for k, v in names.items()
        )
    ):
        out.append("list_names must map list ids to names of at most 100 characters")
    opt = values.get("optout_confirmation_email")
    if opt is not None and not isinstance(opt, bool):
        out.append("optout_confirmation_email must be true, false or null")
    return out


async def load(conn: asyncpg.Connection, account_id: str) -> PageSettings:
    """One account's page settings (defaults when it set none)."""
    return (await load_many(conn, [account_id])).get(account_id, PageSettings())


async def save(conn: asyncpg.Connection, account_id: str, values: dict[str, Any]) -> None:
    """Store `values` (a subset of FIELDS, checked with `errors` first)."""
    await account_pages.upsert(conn, account_id, values, FIELDS)


async def load_many(conn: asyncpg.Connection, accounts: list[str]) -> dict[str, PageSettings]:
    """Page settings of several accounts at once (accounts without settings are left out)."""
    return {
        account: from_columns(values)
        for account, values in (await account_pages.fetch(conn, accounts, FIELDS)).items()
    }


def from_columns(values: dict[str, Any]) -> PageSettings:
    """Settings from stored column values (NULL list names and flag read as unset)."""
    return PageSettings(
        **{
            **values,
            "list_names": values.get("list_names") or {},
            "optout_confirmation_email": bool(values.get("optout_confirmation_email")),
        }
    )
