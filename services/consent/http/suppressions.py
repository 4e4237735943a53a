"""Operator suppress / unsuppress under the consent service's URL. The suppression
service owns the action (S5); this forwards to its one implementation, adding the
profile attributes the consent service knows."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.consent.adapters import queries
from services.suppression.http.actions import operator_action
from shared.runtime import Runtime

# The consent URL has always answered a spam-complaint unsuppress with this text.
SPAM_LOCKED = "S5: a spam complaint is lifted only by a re-subscribe with evidence (C11)"


async def action(rt: Runtime, request: Request, account: str) -> Response:
    """Operator suppress / unsuppress, sent to the suppression service (S5)."""

    async def known_profile(account_id: str, profile_id: str, body: dict[str, Any]) -> dict:
        stored = await queries.profile(rt.db.pool, account_id, profile_id)
        return stored.profile if stored else {}

    return await operator_action(rt, request, account, known_profile, SPAM_LOCKED)
