"""The double opt-in confirmation link (C8, C12): GET shows the button; its POST makes
the pending subscription `subscribed`, once. An expired link offers a new mail."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.consent import handlers
from services.consent.adapters import mails
from services.consent.adapters.repository import find_confirmation
from services.consent.bootstrap import WorkFactory
from services.consent.domain.model import Act
from services.consent.domain.rules import live_time
from services.consent.pages.view import View, claims_of, form_of, invalid, message, view
from services.consent.ports import Confirmation
from shared.contracts import utcnow
from shared.pages import texts
from shared.runtime import Runtime


async def confirm(rt: Runtime, work: WorkFactory, request: Request) -> Response:
    """C8, C12: GET shows the button; its POST makes the pending subscription
    `subscribed`, once. An expired link offers a new mail (POST `renew`)."""
    claims = claims_of(rt, request, mails.CONFIRM)
    if claims is None or not isinstance(claims.get("k"), str):
        return await invalid(rt, request)
    async with rt.db.pool.acquire() as conn:
        found = await find_confirmation(conn, claims["k"])
    if found is None or (found.account_id, found.profile_id) != (claims["a"], claims["p"]):
        return await invalid(rt, request)
    v = await view(rt, request, claims["a"])
    if found.confirmed_at is not None:
        return _already(v)
    form = await form_of(request) if request.method == "POST" else {}
    if form is None:
        return await invalid(rt, request, 413)
    now = utcnow()
    ttl = timedelta(days=rt.settings.confirm_link_ttl_days)
    if found.requested_at is not None and found.requested_at + ttl < now:
        return await _expired(rt, work, request, v, claims, form, now)
    if request.method != "POST":
        return _ask(v, claims)
    async with rt.db.uow() as uow:
        unit = work(uow)
        if not await unit.confirmations.claim_confirmation(claims["k"]):
            return _already(v)
        act = _confirm_act(claims, found, now)
        req = handlers.Request(claims["a"], claims["p"], act, receipt_evidence=found.evidence)
        await handlers.apply_acts(unit, [req])
        await uow.commit()
    return message(v, 200, texts.CONFIRMED_TITLE, v.t(texts.CONFIRMED_TEXT))


def _already(v: View) -> Response:
    return message(v, 200, texts.ALREADY_CONFIRMED_TITLE, v.t(texts.ALREADY_CONFIRMED_TEXT))


def _ask(v: View, claims: dict[str, Any]) -> Response:
    return message(
        v,
        200,
        texts.CONFIRM_TITLE,
        v.ask(claims.get("l"), texts.CONFIRM_ASK_LIST, texts.CONFIRM_ASK),
        forms=[{"fields": {"action": "confirm"}, "label": v.t(texts.CONFIRM_BUTTON)}],
    )


async def _expired(
    rt: Runtime,
    work: WorkFactory,
    request: Request,
    v: View,
    claims: dict[str, Any],
    form: dict[str, list[str]],
    now: datetime,
) -> Response:
    """C12: an expired link says so and offers a new mail; its POST `renew` asks for it."""
    if request.method == "POST" and form.get("action") == ["renew"]:
        async with rt.db.uow() as uow:
            await handlers.renew_confirmation(work(uow), claims["k"], now)
            await uow.commit()
        return message(v, 202, texts.RENEWED_TITLE, v.t(texts.RENEWED_TEXT))
    return message(
        v,
        410,
        texts.EXPIRED_TITLE,
        v.t(texts.EXPIRED_TEXT, days=f"{rt.settings.confirm_link_ttl_days:g}"),
        forms=[{"fields": {"action": "renew"}, "label": v.t(texts.SEND_NEW)}],
    )


def _confirm_act(claims: dict[str, Any], found: Confirmation, now: datetime) -> Act:
    return Act(
        act_id=f"confirm:{claims['k']}",
        action="subscribe",
        channel="email",
        act_at=live_time(now),
        list_id=claims.get("l"),
        scope=str(claims.get("s") or "group"),
        method=found.method or "link",
        confirmed=True,
        actor="profile (confirmation link)",
        # C15: the receipt carries the pending subscribe's notice and jurisdiction.
        notice=found.notice,
        jurisdiction=found.jurisdiction,
    )
