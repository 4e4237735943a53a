"""Data-subject requests over HTTP (P1): file an export or erase, read its status.

Filing writes the request through the outbox to `privacy-requests`, the topic producers
use, so every service (this one included) handles it the same way; the status is
assembled from the parts that arrive on `privacy-results`.
"""

from __future__ import annotations

import uuid

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.consent.adapters import privacy
from shared.contracts import PrivacyRequest, topics, utcnow
from shared.http import error
from shared.operator import invalid, json_body
from shared.runtime import Runtime


async def file(rt: Runtime, request: Request, account: str) -> Response:
    """Accept an export or erase request (202 with its id)."""
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        req = PrivacyRequest.model_validate(
            {
                "request_id": f"pr-{uuid.uuid4().hex}",
                "requested_at": utcnow(),
                **body,
                "account_id": account,
            }
        )
    except ValidationError as exc:
        return invalid(exc)
    async with rt.db.uow() as uow:
        uow.publish(topics.PRIVACY_REQUESTS, req.key, req)
        await uow.commit()
    return JSONResponse(
        {"request_id": req.request_id, "action": req.action, "status": "accepted"},
        status_code=202,
    )


async def status(rt: Runtime, request: Request, account: str) -> Response:
    """Which services are done; an export's document once all four parts are in."""
    async with rt.db.pool.acquire() as conn:
        found = await privacy.request_status(conn, account, request.path_params["request_id"])
    if found is None:
        return error(404, "privacy request not found")
    return JSONResponse(found)
