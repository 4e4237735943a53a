"""The preference centre (W2): per channel, per list and per opt-out level (C10), each
choice explained; after a save the page says what changed."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request
from starlette.responses import Response

from services.consent.adapters import mails, queries
from services.consent.bootstrap import WorkFactory
from services.consent.domain.model import ProfileConsent
from services.consent.pages.preference_form import (
    Who,
    _status,
    describe_act,
    describe_changes,
    email_choice,
    list_ids,
    preference_acts,
)
from services.consent.pages.view import View, apply, claims_of, form_of, invalid, message, view
from shared.pages import page, texts
from shared.runtime import Runtime


async def preferences(rt: Runtime, work: WorkFactory, request: Request) -> Response:
    """W2: GET shows the choices; POST applies the differences and says what changed."""
    claims = claims_of(rt, request, mails.PREFERENCES)
    loaded = None if claims is None else await queries.profile(rt.db.pool, claims["a"], claims["p"])
    if claims is None or loaded is None:
        return await invalid(rt, request)
    account, profile_id = claims["a"], claims["p"]
    v = await view(rt, request, account)
    before = loaded.state
    who = Who.of(claims, v)
    changes = None
    if request.method == "POST":
        form = await form_of(request)
        if form is None:
            return await invalid(rt, request, 413)
        acts = preference_acts(before, form, who, list_ids(before, v))
        if acts is None:
            return message(v, 400, texts.PREFERENCES_TITLE, v.t(texts.UNKNOWN_CHOICE))
        outcomes = await apply(rt, work, account, profile_id, acts) if acts else []
        now = await queries.profile(rt.db.pool, account, profile_id)
        after = now.state if now else before
        changes = describe_changes(before, after, who, v)
        changes += [
            v.t(texts.BLOCKED, what=describe_act(a, who, v), reason=o.rejection)
            for a, o in zip(acts, outcomes, strict=True)
            if o.rejection is not None
        ]
        before = after
    pending = await queries.pending_confirmations(rt.db.pool, account, profile_id)
    return preferences_page(request, v, before, who, changes, {p.list_id for p in pending})


def preferences_page(
    request: Request,
    v: View,
    state: ProfileConsent,
    who: Who,
    changes: list[str] | None,
    pending: Collection[str | None] = (),
) -> Response:
    """The page; `pending` holds the lists (None: email itself) whose double opt-in
    confirmation was asked for and not yet given (C8): shown as waiting for it."""
    current = email_choice(state, who)
    options = [("keep", texts.EMAIL_KEEP, texts.EMAIL_KEEP_HINT)]
    if who.user_scope:
        options.append(("user", texts.EMAIL_USER, texts.EMAIL_USER_HINT))
    if who.client_id:
        options.append(("client", texts.EMAIL_CLIENT, texts.EMAIL_CLIENT_HINT))
    options.append(("group", texts.EMAIL_GROUP, texts.EMAIL_GROUP_HINT))
    names = {"name": v.brand.name, "client": who.client_id or "", "sender": who.user_id or ""}
    email_status = _status(v, state.status("email"))
    if None in pending and state.status("email") != "subscribed":
        email_status = v.t(texts.PENDING_CONFIRMATION)
    if current in ("client", "user"):
        email_status += " · " + v.t(
            texts.CHANGE,
            what=v.t(
                texts.WHAT_EMAIL_FROM, who=names["client" if current == "client" else "sender"]
            ),
            status=_status(v, "unsubscribed"),
        )
    return page(
        "preferences.html",
        v.lang,
        v.brand,
        200,
        title=v.t(texts.PREFERENCES_TITLE),
        action=str(request.url.path) + "?" + str(request.url.query),
        changes=changes,
        email_status=email_status,
        email_options=[
            {
                "value": value,
                "label": v.t(label, **names),
                "hint": v.t(hint, **names),
                "checked": value == current,
            }
            for value, label, hint in options
        ],
        lists=[
            {
                "id": list_id,
                "name": v.settings.list_name(list_id),
                "subscribed": state.lists.get(list_id) == "subscribed",
                "status": v.t(texts.PENDING_CONFIRMATION)
                if list_id in pending and state.lists.get(list_id) != "subscribed"
                else _status(v, state.lists.get(list_id, "never_subscribed")),
            }
            for list_id in list_ids(state, v)
        ],
        sms_channels=sms_channels(v, state),
    )


def sms_channels(v: View, state: ProfileConsent) -> list[dict]:
    """The SMS purposes shown with their status (C5). One not subscribed cannot be
    ticked here, and says why: SMS consent belongs to the phone number (C13)."""
    return [
        {
            "name": slot,
            "label": v.t(label),
            "hint": v.t(hint),
            "why": None if state.status(slot) == "subscribed" else v.t(texts.SMS_START_BY_TEXT),
            "subscribed": state.status(slot) == "subscribed",
            "status": _status(v, state.status(slot)),
        }
        for slot, label, hint in (
            ("sms_marketing", texts.SMS_MARKETING, texts.SMS_MARKETING_HINT),
            ("sms_transactional", texts.SMS_TRANSACTIONAL, texts.SMS_TRANSACTIONAL_HINT),
        )
    ]
