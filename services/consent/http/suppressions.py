"""Operator suppress / unsuppress under the consent service's URL. Both services
serve the action (S5) through one implementation, `shared.operator.suppression_action`;
this one adds the profile attributes the consent service knows."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.consent.adapters import queries
from shared.operator import suppression_action
from shared.runtime import Runtime

# The consent URL has always answered a spam-complaint unsuppress with this text.
SPAM_LOCKED = "S5: a spam complaint is lifted only by a re-subscribe with evidence (C11)"


async def action(rt: Runtime, request: Request, account: str) -> Response:
    """Operator suppress / unsuppress, sent to the suppression service (S5)."""

    async def known_profile(account_id: str, profile_id: str, body: dict[str, Any]) -> dict:
        stored = await queries.profile(rt.db.pool, account_id, profile_id)
        return stored.profile if stored else {}

    return await suppression_action(rt.db, request, account, SPAM_LOCKED, known_profile)
