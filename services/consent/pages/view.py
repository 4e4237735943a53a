"""What every link page shares: the signed token's claims, the account's language and
branding, the message page, and applying the profile's acts (C12, W1, W3)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from services.consent import handlers
from services.consent.bootstrap import WorkFactory
from services.consent.domain.model import Act, Outcome
from services.consent.domain.rules import live_time
from shared.contracts import utcnow
from shared.links import InvalidToken, verify
from shared.pages import Brand, gettext, language_of, page, texts
from shared.pages import accounts as page_accounts
from shared.runtime import Runtime

MAX_FORM_BYTES = 64 * 1024
PRODUCT = Brand(name="consentflow")


@dataclass(frozen=True)
class View:
    """Who the page is for and how it speaks: language, branding, list names."""

    lang: str
    brand: Brand
    settings: page_accounts.PageSettings

    def t(self, message: str, **values: Any) -> str:
        return gettext(self.lang, message, **values)

    def ask(self, list_id: str | None, about_list: str, about_brand: str) -> str:
        """A page's question: `about_list` naming the list when the link is about one,
        else `about_brand` naming the sender."""
        if list_id:
            return self.t(about_list, list=self.settings.list_name(list_id), name=self.brand.name)
        return self.t(about_brand, name=self.brand.name)


async def form_of(request: Request) -> dict[str, list[str]] | None:
    """The POSTed form (urlencoded), or None when it is too large to be ours."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def claims_of(rt: Runtime, request: Request, purpose: str) -> dict[str, Any] | None:
    """The token's claims when it is genuine and names an account and a profile."""
    try:
        claims = verify(rt.settings.link_keys, purpose, request.query_params.get("token", ""))
    except InvalidToken:
        return None
    if not isinstance(claims.get("a"), str) or not isinstance(claims.get("p"), str):
        return None
    return claims


async def view(rt: Runtime, request: Request, account: str | None) -> View:
    """The account's language and branding (the product's when the link is invalid)."""
    if account is None:
        return View(language_of(request), PRODUCT, page_accounts.PageSettings())
    async with rt.db.pool.acquire() as conn:
        got = await page_accounts.load(conn, account)
    return View(language_of(request, got.language), got.brand(account), got)


def message(
    v: View,
    status: int,
    title: str,
    *paragraphs: str,
    forms: list[dict[str, Any]] | None = None,
    links: list[dict[str, str]] | None = None,
) -> Response:
    """The one-message page, with optional buttons (forms) and links."""
    return page(
        "message.html",
        v.lang,
        v.brand,
        status,
        title=v.t(title),
        paragraphs=list(paragraphs),
        forms=forms or [],
        links=links or [],
    )


async def invalid(rt: Runtime, request: Request, status: int = 400) -> Response:
    v = await view(rt, request, None)
    return message(v, status, texts.INVALID_TITLE, v.t(texts.INVALID_TEXT))


def link_act(action: str, claims: dict[str, Any], **extra: Any) -> Act:
    return Act(
        act_id=f"link:{uuid.uuid4().hex}",
        action=action,  # type: ignore[arg-type]
        channel=extra.pop("channel", "email"),
        act_at=live_time(utcnow()),
        list_id=claims.get("l"),
        scope=str(claims.get("s") or "group"),
        method=extra.pop("method", "link"),
        actor="profile (link)",
        **extra,
    )


async def apply(
    rt: Runtime, work: WorkFactory, account: str, profile_id: str, acts: list[Act]
) -> list[Outcome]:
    """Apply `acts` in one transaction; an opt-out made here is confirmed by mail when
    the account asks for it (W3)."""
    async with rt.db.uow() as uow:
        unit = work(uow)
        outcomes = await handlers.apply_acts(
            unit, [handlers.Request(account, profile_id, a) for a in acts]
        )
        opted_out = [
            a
            for a, o in zip(acts, outcomes, strict=True)
            if a.action == "unsubscribe" and a.channel == "email" and o.events
        ]
        if opted_out:
            await handlers.queue_opt_out_confirmation(
                unit, account, profile_id, opted_out[0].act_id
            )
        await uow.commit()
    return outcomes
