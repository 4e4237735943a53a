"""The suppression service's HTTP API, one module per resource; `routes` assembles it."""

from __future__ import annotations

from starlette.routing import Route

from services.suppression.http import actions, profile
from shared.messaging.dead_letters_http import dead_letter_routes
from shared.runtime import Runtime

PROFILE = "/accounts/{account_id}/profiles/{profile_id}/suppressions"


def routes(rt: Runtime) -> list[Route]:
    """Every route of the suppression API."""
    return [
        Route(PROFILE, profile.endpoint(rt), methods=["GET"]),
        Route(PROFILE + "/{action}", actions.endpoint(rt), methods=["POST"]),
        *dead_letter_routes(rt, "suppression"),
    ]
