"""The preference centre's form (W2, C10) as consent acts, and what a save changed in
plain words. Pure: no I/O, so the form's rules are tested without a server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from services.consent.domain.model import Act, ProfileConsent
from services.consent.domain.rules import live_time
from services.consent.pages.view import View
from shared.contracts import utcnow
from shared.pages import texts


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
