"""Actions held in manual review (F5): the account's list, and approving or rejecting
one (the same use case as `review-decisions`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.flow_executor import handlers
from services.flow_executor.adapters import read_model
from services.flow_executor.bootstrap import Executor
from services.flow_executor.http.activity import limit_of
from shared.contracts import ReviewDecision
from shared.http import error, iso
from shared.runtime import Runtime


def list_endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def reviews(request: Request, account: str) -> Response:
        """The account's actions held in manual review, oldest first."""
        async with rt.db.pool.acquire() as conn:
            rows = await read_model.reviews_in(conn, account, limit_of(request))
        return JSONResponse(
            {
                "account_id": account,
                "in_review": [
                    {
                        "alert_id": r["alert_id"],
                        "flow_id": r["flow_id"],
                        "step_id": r["step_id"],
                        "profile_id": r["profile_id"],
                        "held_at": iso(r["created_at"]),
                    }
                    for r in rows
                ],
            }
        )

    return rt.auth.guarded(reviews)


def decide_endpoint(rt: Runtime, executor: Executor) -> Callable[[Request], Awaitable[Response]]:
    async def decide(request: Request, account: str) -> Response:
        """F5: approve or reject an action held in manual review."""
        alert_id = request.path_params["alert_id"]
        decision = request.path_params["decision"]
        if decision not in ("approve", "reject"):
            return error(404, "not found")
        async with rt.db.uow() as uow:
            held = await read_model.run_of_review(uow.conn, alert_id)
            if held is None or held["account_id"] != account:
                return error(404, "no such alert in review")
            if held["status"] != "in_review":
                return error(409, f"alert already {held['status']}")
            # C2: recorded as the key's name (and the operator it names), not the account.
            by = rt.auth.actor(request) or f"api:{account}"
            result = await handlers.decide_reviews(
                executor.work(uow),
                [ReviewDecision(alert_id=alert_id, decision=decision, by=by)],
            )
            await uow.commit()
        if alert_id not in result:
            return error(409, "alert already decided")
        return JSONResponse({"alert_id": alert_id, "status": result[alert_id]})

    return rt.auth.guarded(decide)
