"""Per-account settings: double opt-in (C8), sender address, SMS replies (C13) and the
page settings (W1–W3), read and written together."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.consent.adapters import mails
from services.consent.adapters.repository import PostgresConsentRepository
from services.consent.ports import SETTING_FIELDS, AccountSettings
from shared.addresses import email_error
from shared.http import error
from shared.operator import json_body
from shared.pages import accounts as page_accounts
from shared.pages.accounts import PageSettings
from shared.runtime import Runtime


def settings_problem(body: dict[str, Any]) -> str | None:
    """Why account settings cannot be saved, or None. The sender address goes into every
    confirmation mail's envelope and From header, so it is checked here, once, rather
    than failing (or worse, injecting headers) in the mail worker later."""
    sender = body.get("from_email")
    if sender is not None:
        if not isinstance(sender, str):
            return "from_email must be an email address or null"
        if problem := email_error(sender):
            return f"from_email {sender!r} is not a valid email address: {problem}"
    for field in ("sms_reply_stop", "sms_reply_start", "sms_reply_help"):
        value = body.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > 640):
            return f"{field} must be a text of at most 640 characters, or null"
    return None


def body_problem(body: dict[str, Any]) -> str | None:
    """Why a PUT body cannot be saved (unknown or invalid fields), or None."""
    unknown = set(body) - set(SETTING_FIELDS) - set(page_accounts.FIELDS)
    if unknown:
        return f"unknown settings: {', '.join(sorted(unknown))}"
    page_values = {k: v for k, v in body.items() if k in page_accounts.FIELDS}
    if problems := page_accounts.errors(page_values):
        return "; ".join(problems)
    if "email_double_opt_in" in body and not isinstance(body["email_double_opt_in"], bool | None):
        return "email_double_opt_in must be true, false or null"
    return settings_problem(body)


async def save(rt: Runtime, account: str, body: dict[str, Any]) -> None:
    if isinstance(body.get("from_email"), str):
        body["from_email"] = body["from_email"].strip()
    async with rt.db.uow() as uow:
        repo = PostgresConsentRepository(uow)
        await repo.save_account_settings(
            account, {k: v for k, v in body.items() if k in SETTING_FIELDS}
        )
        await repo.save_page_settings(
            account, {k: v for k, v in body.items() if k in page_accounts.FIELDS}
        )
        await uow.commit()


async def account_settings(rt: Runtime, request: Request, account: str) -> Response:
    """Per-account double opt-in (C8), sender address and SMS replies (C13)."""
    if request.method == "PUT":
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if (problem := body_problem(body)) is not None:
            return error(422, problem)
        await save(rt, account, body)
    async with rt.db.uow() as uow:  # read only: rolled back
        repo = PostgresConsentRepository(uow)
        got = (await repo.account_settings([account])).get(account, AccountSettings())
        pages = (await repo.page_settings([account])).get(account, PageSettings())
    doi = got.email_double_opt_in
    return JSONResponse(
        {
            "account_id": account,
            "email_double_opt_in": rt.settings.email_double_opt_in if doi is None else doi,
            "from_email": got.from_email or mails.DEFAULT_FROM,
            "sms_reply_stop": got.sms_reply_stop,
            "sms_reply_start": got.sms_reply_start,
            "sms_reply_help": got.sms_reply_help,
            **pages.view(),
        }
    )
