"""The flow executor's HTTP API under `/accounts/{account_id}/` (an account's key), one
module per resource; `routes` assembles it."""

from __future__ import annotations

from starlette.routing import Route

from services.flow_executor.bootstrap import Executor
from services.flow_executor.http import activity, flows, reachability, reviews, sending_settings
from shared.messaging.dead_letters_http import dead_letter_routes
from shared.runtime import Runtime

ACCOUNT = "/accounts/{account_id}"


def routes(rt: Runtime, executor: Executor) -> list[Route]:
    """Every route of the executor's API."""
    return [
        Route(ACCOUNT + "/flows", flows.endpoint(rt)),
        Route(ACCOUNT + "/flows/{flow_id}/activity", activity.endpoint(rt)),
        Route(ACCOUNT + "/reviews", reviews.list_endpoint(rt)),
        Route(
            ACCOUNT + "/reviews/{alert_id}/{decision}",
            reviews.decide_endpoint(rt, executor),
            methods=["POST"],
        ),
        Route(
            ACCOUNT + "/profiles/{profile_id}/reachability",
            reachability.endpoint(rt, executor),
        ),
        Route(
            ACCOUNT + "/sending-settings",
            sending_settings.endpoint(rt, executor),
            methods=["GET", "PUT"],
        ),
        *dead_letter_routes(rt, "flow_executor"),
    ]
