"""The dispatcher's HTTP routes in one list: the confirm and unsubscribe links recipients
click (A4), and the API marketers read (A1 rejections, A4 "Sent to", A6 activity, A8
limit), scoped by API key to one account (X5). Each resource is a module of `http/`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from starlette.routing import Route

from services.alert_dispatcher import resend
from services.alert_dispatcher.http import alerts, flows, limits, pages, recipients
from services.alert_dispatcher.http.links import LinkPages
from services.alert_dispatcher.ports import AlertWork
from shared.db.uow import UnitOfWork
from shared.runtime import Runtime

Work = Callable[[UnitOfWork], AlertWork]


def link_routes(rt: Runtime, work: Work) -> list[Route]:
    """A4, C12: the pages behind the links in confirmation and alert mails."""
    return LinkPages(rt, work).routes()


def api_routes(rt: Runtime, work: Work) -> list[Route]:
    guarded = rt.auth.guarded
    return [
        Route(
            "/accounts/{account_id}/flows/{flow_id}/alerts",
            guarded(partial(flows.flow_status, rt)),
        ),
        Route(
            "/accounts/{account_id}/alerts/{flow_id}/{step_id}", guarded(partial(alerts.action, rt))
        ),
        Route("/accounts/{account_id}/alert-activity", guarded(partial(alerts.activity, rt))),
        Route(
            "/accounts/{account_id}/alert-recipients", guarded(partial(recipients.recipients, rt))
        ),
        Route(
            "/accounts/{account_id}/alert-settings",
            guarded(partial(limits.limits, rt, work)),
            methods=["GET", "PUT"],
        ),
        Route(
            "/accounts/{account_id}/alert-pages",
            guarded(partial(pages.page_settings, rt, work)),
            methods=["GET", "PUT"],
        ),
    ]


def routes(rt: Runtime, work: Work) -> list[Route]:
    """Every route of the dispatcher (beside health and metrics); those that change
    something do it through the dispatcher's unit of work, `work`."""
    return link_routes(rt, work) + api_routes(rt, work) + resend.routes(rt, work)
