"""The consent service's per-account API (C14, X5, operator actions, account settings,
data-subject requests): the handlers are in `services/consent/http/`, one module per
resource; here they are put behind the API key check. The link pages a profile clicks
are in `services/consent/pages/`.

Operator actions go through the same path as every producer: the endpoint validates the
request (C11 answers 422 here already), then writes a `ConsentCommand` (or, for
suppressions, a `SuppressionCommand`) through the outbox to the command topic and answers
202 with the command id.
"""

from __future__ import annotations

from starlette.routing import Route

from services.consent.bootstrap import WorkFactory
from services.consent.http import routes
from shared.runtime import Runtime


def api_routes(rt: Runtime, work: WorkFactory) -> list[Route]:
    """The per-account routes, each behind the API key check (X5); operator acts are
    checked through `work`, as the consumers apply them."""
    return routes(rt, rt.auth.guarded, work)
