"""The consent service's per-account HTTP API, one module per resource:

- `consent.py`: a profile's consent, history and operator consent acts (C2, C11, C14);
  its receipts, their verification and explain (C15–C17)
- `suppressions.py`: operator suppress / unsuppress, forwarded to the suppression
  service's implementation (S5)
- `links.py`: signed links for a profile's mails (C12)
- `reports.py`: the CSV export and the not-opted-in segment (C14)
- `settings.py`: per-account settings (C8, C13, W1–W3)
- `privacy.py`: data-subject requests (P1)

`routes` puts them together behind the API key check; the link pages a profile clicks
are in `services/consent/pages/`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.consent.bootstrap import WorkFactory
from services.consent.http import consent, links, privacy, reports, settings, suppressions
from services.consent.http.opt_outs import list_opt_outs
from services.consent.http.profile_search import find as find_profiles
from shared.messaging.dead_letters_http import dead_letter_routes
from shared.runtime import Runtime

Handler = Callable[[Runtime, Request, str], Awaitable[Response]]
Guard = Callable[[Callable[[Request, str], Awaitable[Response]]], Callable]


@dataclass(frozen=True)
class WithWork:
    """A handler that runs a use case, so it is given the service's unit of work too."""

    fn: Callable[[Runtime, WorkFactory, Request, str], Awaitable[Response]]


BASE = "/accounts/{account_id}"
PROFILE = BASE + "/profiles/{profile_id}"
TABLE: list[tuple[str, Handler | WithWork, list[str]]] = [
    (PROFILE + "/consent", consent.show, ["GET"]),
    (PROFILE + "/consent/history", consent.history, ["GET"]),
    (PROFILE + "/consent/receipts", consent.receipts, ["GET"]),
    (PROFILE + "/consent/verify", consent.verify_profile, ["GET"]),
    (PROFILE + "/consent/explain", consent.explain, ["GET"]),
    (BASE + "/consent/verify", consent.verify_account, ["GET"]),
    (PROFILE + "/consent/{action}", WithWork(consent.act), ["POST"]),
    (PROFILE + "/suppressions/{action}", suppressions.action, ["POST"]),
    (PROFILE + "/links", links.profile_links, ["GET"]),
    (BASE + "/consent/export.csv", reports.export_csv, ["GET"]),
    (BASE + "/segments/not-opted-in", reports.not_opted_in, ["GET"]),
    (BASE + "/consent/settings", settings.account_settings, ["GET", "PUT"]),
    (BASE + "/privacy-requests", privacy.file, ["POST"]),
    (BASE + "/privacy-requests/{request_id}", privacy.status, ["GET"]),
    (BASE + "/profiles", find_profiles, ["GET"]),
    (BASE + "/opt-outs", list_opt_outs, ["GET"]),
]


def routes(rt: Runtime, guarded: Guard, work: WorkFactory) -> list[Route]:
    """Every route of the table, each handler given the runtime (and `work`, where it
    runs a use case) and the account whose key `guarded` checked; then the dead letters
    of the topics the service consumes."""
    table = [
        Route(path, guarded(_bound(rt, work, entry)), methods=methods)
        for path, entry, methods in TABLE
    ]
    return table + dead_letter_routes(rt, "consent")


def _bound(
    rt: Runtime, work: WorkFactory, entry: Handler | WithWork
) -> Callable[[Request, str], Awaitable[Response]]:
    fn = entry.fn if isinstance(entry, WithWork) else entry

    async def handler(request: Request, account: str) -> Response:
        if isinstance(entry, WithWork):
            return await entry.fn(rt, work, request, account)
        return await entry(rt, request, account)

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler
