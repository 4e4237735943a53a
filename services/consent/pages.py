"""The pages a profile reaches from the links in our mails (C8, C10, C12, W1, W2).

Opening a link (GET, and HEAD, which Starlette answers with the GET handler) only ever
shows a page: mail scanners and link checkers open every link in a mail. Every change is
a POST: the page's button, or an RFC 8058 one-click POST to the `List-Unsubscribe` URL.
Changes go through the same consent acts as the API and the command topic
(`handlers.apply_acts`), so history and C9 events are the same whatever the path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.consent import handlers
from services.consent.adapters import mails
from services.consent.adapters import repository as repo
from services.consent.domain.model import Act, ProfileConsent
from services.consent.domain.rules import live_time, unsubscribe_done
from shared.contracts import utcnow
from shared.links import InvalidToken, verify
from shared.pages import Brand, gettext, language_of, page, stylesheet_route, texts
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


async def form_of(request: Request) -> dict[str, list[str]] | None:
    """The POSTed form (urlencoded), or None when it is too large to be ours."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def link_routes(rt: Runtime) -> list[Route]:
    secret = rt.settings.link_keys
    ttl = timedelta(days=rt.settings.confirm_link_ttl_days)
    days = f"{rt.settings.confirm_link_ttl_days:g}"

    def claims_of(request: Request, purpose: str) -> dict[str, Any] | None:
        try:
            claims = verify(secret, purpose, request.query_params.get("token", ""))
        except InvalidToken:
            return None
        if not isinstance(claims.get("a"), str) or not isinstance(claims.get("p"), str):
            return None
        return claims

    async def view(request: Request, account: str | None) -> View:
        if account is None:
            return View(language_of(request), PRODUCT, page_accounts.PageSettings())
        async with rt.db.pool.acquire() as conn:
            got = await page_accounts.load(conn, account)
        return View(language_of(request, got.language), got.brand(account), got)

    async def message(
        request: Request,
        v: View,
        status: int,
        title: str,
        *paragraphs: str,
        forms: list[dict[str, Any]] | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> Response:
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

    async def invalid(request: Request, status: int = 400) -> Response:
        v = await view(request, None)
        return await message(request, v, status, texts.INVALID_TITLE, v.t(texts.INVALID_TEXT))

    async def load_state(account: str, profile_id: str) -> tuple[ProfileConsent, dict] | None:
        async with rt.db.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT state, profile FROM consent_state"
                " WHERE account_id = $1 AND profile_id = $2",
                account,
                profile_id,
            )
        if row is None:
            return None
        return ProfileConsent.from_json(row["state"]), row["profile"] or {}

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

    async def apply(account: str, profile_id: str, acts: list[Act]) -> list[Any]:
        """Apply `acts` in one transaction; an opt-out made here is confirmed by mail when
        the account asks for it (W3)."""
        async with rt.db.uow() as uow:
            outcomes = await handlers.apply_acts(
                uow, [handlers.Request(account, profile_id, a) for a in acts], rt.settings
            )
            opted_out = [
                a
                for a, o in zip(acts, outcomes, strict=True)
                if a.action == "unsubscribe" and a.channel == "email" and o.events
            ]
            if opted_out:
                await handlers.queue_opt_out_confirmation(
                    uow.conn, rt.settings, account, profile_id, opted_out[0].act_id
                )
            await uow.commit()
        return outcomes

    async def confirm(request: Request) -> Response:
        """C8, C12: GET shows the button; its POST makes the pending subscription
        `subscribed`, once. An expired link offers a new mail (POST `renew`)."""
        claims = claims_of(request, mails.CONFIRM)
        if claims is None or not isinstance(claims.get("k"), str):
            return await invalid(request)
        async with rt.db.pool.acquire() as conn:
            row = await repo.confirmation(conn, claims["k"])
        if row is None or (row["account_id"], row["profile_id"]) != (claims["a"], claims["p"]):
            return await invalid(request)
        v = await view(request, claims["a"])
        if row["confirmed_at"] is not None:
            return await message(
                request,
                v,
                200,
                texts.ALREADY_CONFIRMED_TITLE,
                v.t(texts.ALREADY_CONFIRMED_TEXT),
            )
        form = await form_of(request) if request.method == "POST" else {}
        if form is None:
            return await invalid(request, 413)
        now = utcnow()
        if row["requested_at"] + ttl < now:
            if request.method == "POST" and form.get("action") == ["renew"]:
                async with rt.db.uow() as uow:
                    await handlers.renew_confirmation(uow.conn, rt.settings, claims["k"], now)
                    await uow.commit()
                return await message(request, v, 202, texts.RENEWED_TITLE, v.t(texts.RENEWED_TEXT))
            return await message(
                request,
                v,
                410,
                texts.EXPIRED_TITLE,
                v.t(texts.EXPIRED_TEXT, days=days),
                forms=[{"fields": {"action": "renew"}, "label": v.t(texts.SEND_NEW)}],
            )
        if request.method != "POST":
            list_id = claims.get("l")
            ask = (
                v.t(texts.CONFIRM_ASK_LIST, list=v.settings.list_name(list_id), name=v.brand.name)
                if list_id
                else v.t(texts.CONFIRM_ASK, name=v.brand.name)
            )
            return await message(
                request,
                v,
                200,
                texts.CONFIRM_TITLE,
                ask,
                forms=[{"fields": {"action": "confirm"}, "label": v.t(texts.CONFIRM_BUTTON)}],
            )
        async with rt.db.uow() as uow:
            if not await repo.claim_confirmation(uow.conn, claims["k"]):
                return await message(
                    request,
                    v,
                    200,
                    texts.ALREADY_CONFIRMED_TITLE,
                    v.t(texts.ALREADY_CONFIRMED_TEXT),
                )
            act = Act(
                act_id=f"confirm:{claims['k']}",
                action="subscribe",
                channel="email",
                act_at=live_time(now),
                list_id=claims.get("l"),
                scope=str(claims.get("s") or "group"),
                method=row["method"] or "link",
                confirmed=True,
                actor="profile (confirmation link)",
            )
            await handlers.apply_acts(
                uow, [handlers.Request(claims["a"], claims["p"], act)], rt.settings
            )
            await uow.commit()
        return await message(request, v, 200, texts.CONFIRMED_TITLE, v.t(texts.CONFIRMED_TEXT))

    async def unsubscribe(request: Request) -> Response:
        """C12: GET shows a one-button page; POST (the button, or RFC 8058 one-click from
        the mail client) unsubscribes. A repeated POST changes nothing more."""
        claims = claims_of(request, mails.UNSUBSCRIBE)
        if claims is None or await load_state(claims["a"], claims["p"]) is None:
            return await invalid(request)
        v = await view(request, claims["a"])
        prefs = mails.profile_links(rt.settings, claims["a"], claims["p"])["preferences_url"]
        if request.method != "POST":
            list_id = claims.get("l")
            ask = (
                v.t(
                    texts.UNSUBSCRIBE_ASK_LIST,
                    list=v.settings.list_name(list_id),
                    name=v.brand.name,
                )
                if list_id
                else v.t(texts.UNSUBSCRIBE_ASK, name=v.brand.name)
            )
            return await message(
                request,
                v,
                200,
                texts.UNSUBSCRIBE_TITLE,
                ask,
                forms=[{"fields": {}, "label": v.t(texts.UNSUBSCRIBE_BUTTON)}],
                links=[{"href": prefs, "label": v.t(texts.MANAGE_PREFERENCES)}],
            )
        act = link_act("unsubscribe", claims, clicked=True)
        (outcome,) = await apply(claims["a"], claims["p"], [act])
        if not unsubscribe_done(outcome, act):  # X3, X3a: never claim what was not done
            reason = outcome.rejection or "a newer choice is in force"
            return await message(
                request,
                v,
                422,
                texts.INVALID_TITLE,
                v.t(texts.BLOCKED, what=v.t(texts.UNSUBSCRIBE_TITLE), reason=reason),
                links=[{"href": prefs, "label": v.t(texts.MANAGE_PREFERENCES)}],
            )
        return await message(
            request,
            v,
            200,
            texts.UNSUBSCRIBED_TITLE,
            v.t(texts.UNSUBSCRIBED_TEXT),
            links=[{"href": prefs, "label": v.t(texts.CHANGED_MIND)}],
        )

    async def preferences(request: Request) -> Response:
        """W2: per channel, per list and per opt-out level (C10), each choice explained;
        after a save the page says what changed."""
        claims = claims_of(request, mails.PREFERENCES)
        loaded = None if claims is None else await load_state(claims["a"], claims["p"])
        if claims is None or loaded is None:
            return await invalid(request)
        account, profile_id = claims["a"], claims["p"]
        v = await view(request, account)
        before, _ = loaded
        who = Who.of(claims, v)
        changes = None
        if request.method == "POST":
            form = await form_of(request)
            if form is None:
                return await invalid(request, 413)
            acts = preference_acts(before, form, who, list_ids(before, v))
            if acts is None:
                return await message(
                    request, v, 400, texts.PREFERENCES_TITLE, v.t(texts.UNKNOWN_CHOICE)
                )
            outcomes = await apply(account, profile_id, acts) if acts else []
            after = (await load_state(account, profile_id) or (before, {}))[0]
            changes = describe_changes(before, after, who, v)
            changes += [
                v.t(texts.BLOCKED, what=describe_act(a, who, v), reason=o.rejection)
                for a, o in zip(acts, outcomes, strict=True)
                if o.rejection is not None
            ]
            before = after
        return preferences_page(request, v, before, who, changes)

    return [
        stylesheet_route(),
        Route("/links/consent/confirm", confirm, methods=["GET", "POST"]),
        Route("/links/consent/unsubscribe", unsubscribe, methods=["GET", "POST"]),
        Route("/links/consent/preferences", preferences, methods=["GET", "POST"]),
    ]


@dataclass(frozen=True)
class Who:
    """The levels a person can opt out at from this link (C10): the whole group (the
    account), and the client and sender the mail was sent for, when the link names them."""

    group: str
    client_id: str | None
    user_id: str | None

    @classmethod
    def of(cls, claims: dict[str, Any], v: View) -> Who:
        client = claims.get("cl") if isinstance(claims.get("cl"), str) else None
        user = claims.get("u") if isinstance(claims.get("u"), str) and client else None
        return cls(v.brand.name, client, user)

    @property
    def client_scope(self) -> str | None:
        return f"client:{self.client_id}" if self.client_id else None

    @property
    def user_scope(self) -> str | None:
        return f"user:{self.client_id}/{self.user_id}" if self.client_id and self.user_id else None


def email_choice(state: ProfileConsent, who: Who) -> str | None:
    """Which email option describes the state now (None: never subscribed)."""
    outs = set(state.opt_outs)
    if "group" in outs:
        return "group"
    if who.client_scope in outs:
        return "client"
    if who.user_scope in outs:
        return "user"
    return "keep" if state.status("email") == "subscribed" else None


def list_ids(state: ProfileConsent, v: View) -> list[str]:
    return sorted(set(state.lists) | set(v.settings.list_names))


def _act(action: str, channel: str = "email", **fields: Any) -> Act:
    return Act(
        act_id=f"pref:{uuid.uuid4().hex}",
        action=action,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        act_at=live_time(utcnow()),
        method="preference_center",
        actor="profile (preference centre)",
        # The signed link proves the mailbox: a subscribe here is the profile's own
        # confirmation (C8, C11); an unsubscribe is the profile's own click (C9).
        confirmed=action == "subscribe",
        clicked=action == "unsubscribe",
        **fields,
    )


def preference_acts(
    state: ProfileConsent, form: dict[str, list[str]], who: Who, lists: list[str]
) -> list[Act] | None:
    """The consent acts that turn `state` into what the form asks for (None: a choice we
    do not offer). Only differences become acts, so saving twice changes nothing."""
    acts: list[Act] = []
    choice = (form.get("email") or [None])[0]
    offered = {"keep", "group"} | ({"client"} if who.client_id else set())
    offered |= {"user"} if who.user_scope else set()
    if choice is not None and choice not in offered:
        return None
    outs = set(state.opt_outs)
    if choice is not None and choice != email_choice(state, who):
        email_now = state.status("email")
        if email_now == "unsubscribed" or (choice == "keep" and email_now != "subscribed"):
            acts.append(_act("subscribe", scope="group"))
        if choice == "group":
            acts = [_act("unsubscribe", scope="group")]
        else:
            # Levels run group > client > user: "keep" lifts them all, a level lifts
            # the ones above it and leaves the ones below as they are.
            above = {"keep": ("client", "user"), "user": ("client",), "client": ()}[choice]
            for level, scope in (("client", who.client_scope), ("user", who.user_scope)):
                if scope is None:
                    continue
                if level == choice:
                    acts.append(_act("unsubscribe", scope=scope))
                elif level in above and scope in outs:
                    acts.append(_act("subscribe", scope=scope))
    ticked = set(form.get("list", []))
    shown = set(form.get("lists_shown", []))
    if not ticked <= set(lists) or not shown <= set(lists):
        return None
    for list_id in sorted(shown):
        subscribed = state.lists.get(list_id) == "subscribed"
        if subscribed and list_id not in ticked:
            acts.append(_act("unsubscribe", list_id=list_id))
        elif not subscribed and list_id in ticked:
            acts.append(_act("subscribe", list_id=list_id))
    sms_on = [s for s in ("sms_marketing", "sms_transactional") if state.status(s) == "subscribed"]
    if any(s not in form for s in sms_on):
        acts.append(_act("unsubscribe", channel="sms", phone_number=state.phone_number))
    return acts


def _status(v: View, status: str) -> str:
    return v.t(texts.STATUS.get(status, texts.STATUS["never_subscribed"]))


def _scope_label(scope: str, who: Who, v: View) -> str:
    if scope == "group":
        return v.t(texts.WHAT_EMAIL)
    name = scope.split(":", 1)[1]
    if scope.startswith("user:") and who.user_scope == scope:
        name = who.user_id or name
    return v.t(texts.WHAT_EMAIL_FROM, who=name)


def describe_act(act: Act, who: Who, v: View) -> str:
    if act.list_id:
        return v.t(texts.WHAT_LIST, list=v.settings.list_name(act.list_id))
    if act.channel == "sms":
        return v.t(texts.SMS_MARKETING)
    return _scope_label(act.scope, who, v)


def describe_changes(before: ProfileConsent, after: ProfileConsent, who: Who, v: View) -> list[str]:
    """What a save changed, in plain words (W2)."""
    out = []
    if before.status("email") != after.status("email"):
        out.append(
            v.t(texts.CHANGE, what=v.t(texts.WHAT_EMAIL), status=_status(v, after.status("email")))
        )
    old, new = set(before.opt_outs) - {"group"}, set(after.opt_outs) - {"group"}
    for scope in sorted(new - old):
        out.append(
            v.t(texts.CHANGE, what=_scope_label(scope, who, v), status=_status(v, "unsubscribed"))
        )
    for scope in sorted(old - new):
        out.append(
            v.t(texts.CHANGE, what=_scope_label(scope, who, v), status=_status(v, "subscribed"))
        )
    for list_id in sorted(set(before.lists) | set(after.lists)):
        was, now = before.lists.get(list_id), after.lists.get(list_id)
        if was != now and now is not None:
            what = v.t(texts.WHAT_LIST, list=v.settings.list_name(list_id))
            out.append(v.t(texts.CHANGE, what=what, status=_status(v, now)))
    for slot, label in (
        ("sms_marketing", texts.SMS_MARKETING),
        ("sms_transactional", texts.SMS_TRANSACTIONAL),
    ):
        if before.status(slot) != after.status(slot):
            out.append(v.t(texts.CHANGE, what=v.t(label), status=_status(v, after.status(slot))))
    return out


def preferences_page(
    request: Request, v: View, state: ProfileConsent, who: Who, changes: list[str] | None
) -> Response:
    current = email_choice(state, who)
    options = [("keep", texts.EMAIL_KEEP, texts.EMAIL_KEEP_HINT)]
    if who.user_scope:
        options.append(("user", texts.EMAIL_USER, texts.EMAIL_USER_HINT))
    if who.client_id:
        options.append(("client", texts.EMAIL_CLIENT, texts.EMAIL_CLIENT_HINT))
    options.append(("group", texts.EMAIL_GROUP, texts.EMAIL_GROUP_HINT))
    names = {"name": v.brand.name, "client": who.client_id or "", "sender": who.user_id or ""}
    email_status = _status(v, state.status("email"))
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
                "status": _status(v, state.lists.get(list_id, "never_subscribed")),
            }
            for list_id in list_ids(state, v)
        ],
        sms_channels=[
            {
                "name": slot,
                "label": v.t(label),
                "hint": v.t(hint),
                "subscribed": state.status(slot) == "subscribed",
                "status": _status(v, state.status(slot)),
            }
            for slot, label, hint in (
                ("sms_marketing", texts.SMS_MARKETING, texts.SMS_MARKETING_HINT),
                ("sms_transactional", texts.SMS_TRANSACTIONAL, texts.SMS_TRANSACTIONAL_HINT),
            )
        ],
    )
