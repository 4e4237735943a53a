"""The links in the dispatcher's mails (A4, C12): opening one (GET, or HEAD) shows a page
and changes nothing; the page's button (POST) acts, and so does an RFC 8058 one-click
POST to the `List-Unsubscribe` URL. An expired confirm link offers a new mail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.alert_dispatcher import handlers
from services.alert_dispatcher.adapters import mails, queries
from services.alert_dispatcher.domain.recipients import (
    on_confirm,
    on_unsubscribe,
    recipient_key,
)
from services.alert_dispatcher.ports import AlertWork
from shared.contracts import utcnow
from shared.db.uow import UnitOfWork
from shared.links import InvalidToken, verify
from shared.pages import Brand, gettext, language_of, page, stylesheet_route, texts
from shared.pages.accounts import PageSettings
from shared.runtime import Runtime

PRODUCT = Brand(name="consentflow")


async def form_action(request: Request) -> str | None:
    """The `action` field of the page's form (None for a body over 64 KiB)."""
    body = await request.body()
    if len(body) > 64 * 1024:
        return None
    return (parse_qs(body.decode("utf-8", "replace")).get("action") or [""])[0]


class LinkPages:
    def __init__(self, rt: Runtime, work: Callable[[UnitOfWork], AlertWork]) -> None:
        self._rt = rt
        self._work = work
        self._secret = rt.settings.link_keys
        self._ttl = timedelta(days=rt.settings.confirm_link_ttl_days)
        self._days = f"{rt.settings.confirm_link_ttl_days:g}"

    def routes(self) -> list[Route]:
        return [
            stylesheet_route(),
            Route("/links/recipients/confirm", self.confirm, methods=["GET", "POST"]),
            Route("/links/recipients/unsubscribe", self.unsubscribe, methods=["GET", "POST"]),
        ]

    def _claims(self, request: Request, purpose: str) -> tuple[str, str, int] | None:
        """(account, email, generation) of a genuine token, else None."""
        try:
            claims = verify(self._secret, purpose, request.query_params.get("token", ""))
            # The key of the opt-in (I1); a link minted before keys were normal forms
            # names the same recipient.
            return str(claims["a"]), recipient_key(str(claims["e"])), int(claims["g"])
        except (InvalidToken, KeyError, TypeError, ValueError):
            return None

    async def show(
        self,
        request: Request,
        account: str | None,
        status: int,
        title: str,
        text: str,
        button: str | None = None,
        action: str = "",
        **values: Any,
    ) -> Response:
        """A page in the account's brand and language, with an optional one-button form."""
        settings = PageSettings()
        if account is not None:
            async with self._rt.db.pool.acquire() as conn:
                settings = await queries.pages(conn, account)
        brand = settings.brand(account) if account is not None else PRODUCT
        lang = language_of(request, settings.language)
        forms = [{"fields": {"action": action}, "label": gettext(lang, button)}] if button else []
        return page(
            "message.html",
            lang,
            brand,
            status,
            title=gettext(lang, title),
            paragraphs=[gettext(lang, text, name=brand.name, days=self._days, **values)],
            forms=forms,
            links=[],
        )

    async def invalid(self, request: Request) -> Response:
        return await self.show(request, None, 400, texts.INVALID_TITLE, texts.INVALID_TEXT)

    async def confirm(self, request: Request) -> Response:
        """A4: the confirm button makes the recipient `confirmed` (idempotent)."""
        got = self._claims(request, mails.CONFIRM)
        if got is None:
            return await self.invalid(request)
        account, email, gen = got
        async with self._rt.db.uow() as uow:
            recipients = self._work(uow).recipients
            current = (await recipients.find(account, [email])).get(email)
            asked = await recipients.asked(account, email)
        peek = on_confirm(current, gen).outcome
        if peek == "unknown":
            return await self.invalid(request)
        if peek in ("expired", "unchanged"):
            return await self._confirmed(request, account, peek)
        action = await form_action(request) if request.method == "POST" else None
        now = utcnow()
        if asked is not None and asked.at + self._ttl < now:
            return await self._expired(request, account, email, now, action == "renew")
        if request.method != "POST":
            return await self.show(
                request,
                account,
                200,
                texts.ALERTS_CONFIRM_TITLE,
                texts.ALERTS_CONFIRM_ASK,
                button=texts.ALERTS_CONFIRM_BUTTON,
                action="confirm",
                email=email,
            )
        async with self._rt.db.uow() as uow:
            result = await handlers.click(self._work(uow), account, email, gen, on_confirm)
            await uow.commit()
        return await self._confirmed(request, account, result.outcome)

    async def _confirmed(self, request: Request, account: str, outcome: str) -> Response:
        if outcome == "changed":
            text = texts.ALERTS_CONFIRMED_TEXT
        elif outcome == "unchanged":
            text = texts.ALERTS_ALREADY_TEXT
        else:
            return await self.show(
                request, account, 410, texts.ALERTS_OUTDATED_TITLE, texts.ALERTS_OUTDATED_TEXT
            )
        return await self.show(request, account, 200, texts.ALERTS_CONFIRMED_TITLE, text)

    async def _expired(
        self, request: Request, account: str, email: str, now: datetime, renew: bool
    ) -> Response:
        """C12: an expired confirm link says so and offers a new mail; its button sends it."""
        if renew:
            async with self._rt.db.uow() as uow:
                await handlers.renew_confirmation(self._work(uow), account, email, now)
                await uow.commit()
            return await self.show(request, account, 202, texts.RENEWED_TITLE, texts.RENEWED_TEXT)
        return await self.show(
            request,
            account,
            410,
            texts.EXPIRED_TITLE,
            texts.EXPIRED_TEXT,
            button=texts.SEND_NEW,
            action="renew",
        )

    async def unsubscribe(self, request: Request) -> Response:
        """A4: the unsubscribe link disables the recipient. GET only shows a one-button
        page: mail scanners open links in mails, and a GET that unsubscribed would let
        them switch off someone's alerts unseen."""
        got = self._claims(request, mails.UNSUBSCRIBE)
        if got is None:
            return await self.invalid(request)
        account, email, gen = got
        if request.method != "POST":
            return await self.show(
                request,
                account,
                200,
                texts.ALERTS_STOP_TITLE,
                texts.ALERTS_STOP_ASK,
                button=texts.ALERTS_STOP_BUTTON,
                action="unsubscribe",
            )
        async with self._rt.db.uow() as uow:
            result = await handlers.click(self._work(uow), account, email, gen, on_unsubscribe)
            await uow.commit()
        if result.outcome == "unknown":
            return await self.invalid(request)
        return await self.show(
            request, account, 200, texts.ALERTS_STOPPED_TITLE, texts.ALERTS_STOPPED_TEXT
        )
