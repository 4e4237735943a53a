"""Operator suppress / unsuppress (S5) under the suppression service's URL. The
request is validated (S5 answers 422), then written through the outbox to
`suppression-commands` like any producer's command (202); the consent service serves the
same action under its own URL through the same `shared.operator.suppression_action`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from services.suppression.domain.rules import SPAM_LOCKED
from shared.operator import suppression_action
from shared.runtime import Runtime


def endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    """`POST …/suppressions/{action}` of the suppression API."""

    async def action(request: Request, account: str) -> Response:
        """Operator suppress / unsuppress (S5)."""
        return await suppression_action(rt.db, request, account, SPAM_LOCKED)

    return rt.auth.guarded(action)
