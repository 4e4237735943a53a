"""The pages a profile reaches from the links in our mails (C8, C10, C12, W1, W2).

Opening a link (GET, and HEAD, which Starlette answers with the GET handler) only ever
shows a page: mail scanners and link checkers open every link in a mail. Every change is
a POST: the page's button, or an RFC 8058 one-click POST to the `List-Unsubscribe` URL.
Changes go through the same consent acts as the API and the command topic
(`handlers.apply_acts`), so history and C9 events are the same whatever the path.

One module per page (`confirm.py`, `unsubscribe.py`, `preferences.py`); what they share
is in `view.py`, the preference form's rules in `preference_form.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.consent.bootstrap import WorkFactory
from services.consent.pages.confirm import confirm
from services.consent.pages.preference_form import Who, email_choice, preference_acts
from services.consent.pages.preferences import preferences
from services.consent.pages.unsubscribe import unsubscribe
from shared.pages import stylesheet_route
from shared.runtime import Runtime

__all__ = ["Who", "email_choice", "link_routes", "preference_acts"]

Page = Callable[[Runtime, WorkFactory, Request], Awaitable[Response]]


def link_routes(rt: Runtime, work: WorkFactory) -> list[BaseRoute]:
    """The stylesheet and the three link pages; their changes go through `work`."""
    return [
        stylesheet_route(),
        Route("/links/consent/confirm", _bound(rt, work, confirm), methods=["GET", "POST"]),
        Route("/links/consent/unsubscribe", _bound(rt, work, unsubscribe), methods=["GET", "POST"]),
        Route("/links/consent/preferences", _bound(rt, work, preferences), methods=["GET", "POST"]),
    ]


def _bound(rt: Runtime, work: WorkFactory, fn: Page) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await fn(rt, work, request)

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint
