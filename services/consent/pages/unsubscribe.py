"""The unsubscribe link (C12): GET shows a one-button page; POST (the button, or an
RFC 8058 one-click POST from the mail client) unsubscribes. A repeated POST changes
nothing more."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.consent.adapters import mails, queries
from services.consent.bootstrap import WorkFactory
from services.consent.domain.rules import unsubscribe_done
from services.consent.pages.view import apply, claims_of, invalid, link_act, message, view
from shared.pages import texts
from shared.runtime import Runtime


async def unsubscribe(rt: Runtime, work: WorkFactory, request: Request) -> Response:
    """C12: GET shows a one-button page; POST unsubscribes."""
    claims = claims_of(rt, request, mails.UNSUBSCRIBE)
    if claims is None or await queries.profile(rt.db.pool, claims["a"], claims["p"]) is None:
        return await invalid(rt, request)
    v = await view(rt, request, claims["a"])
    prefs = mails.profile_links(rt.settings, claims["a"], claims["p"])["preferences_url"]
    if request.method != "POST":
        return message(
            v,
            200,
            texts.UNSUBSCRIBE_TITLE,
            v.ask(claims.get("l"), texts.UNSUBSCRIBE_ASK_LIST, texts.UNSUBSCRIBE_ASK),
            forms=[{"fields": {}, "label": v.t(texts.UNSUBSCRIBE_BUTTON)}],
            links=[{"href": prefs, "label": v.t(texts.MANAGE_PREFERENCES)}],
        )
    act = link_act("unsubscribe", claims, clicked=True)
    (outcome,) = await apply(rt, work, claims["a"], claims["p"], [act])
    if not unsubscribe_done(outcome, act):  # X3, X3a: never claim what was not done
        reason = outcome.rejection or "a newer choice is in force"
        return message(
            v,
            422,
            texts.INVALID_TITLE,
            v.t(texts.BLOCKED, what=v.t(texts.UNSUBSCRIBE_TITLE), reason=reason),
            links=[{"href": prefs, "label": v.t(texts.MANAGE_PREFERENCES)}],
        )
    return message(
        v,
        200,
        texts.UNSUBSCRIBED_TITLE,
        v.t(texts.UNSUBSCRIBED_TEXT),
        links=[{"href": prefs, "label": v.t(texts.CHANGED_MIND)}],
    )
