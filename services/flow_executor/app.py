"""The flow executor's wiring: consumers, the delay scheduler and its HTTP API."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.contracts import (
    ConsentChanged,
    ProfileEvent,
    ReviewDecision,
    SuppressionChanged,
    topics,
)
from shared.http import error
from shared.kafka import json_parser
from shared.logging import get_logger
from shared.runtime import Runtime
from services.flow_executor import handlers

log = get_logger(__name__)


def build(rt: Runtime) -> None:
    rt.consume(topics.FLOW_DEFINITIONS, handlers.parse_definition, handlers.save_definitions,
               consumer=handlers.DEFINITIONS)
    rt.consume(
        topics.PROFILE_EVENTS,
        json_parser(ProfileEvent),
        handlers.enter_from_events,
        message_id=lambda e: f"{e.account_id}:{e.event_id}",
    )
    rt.consume(
        topics.CONSENT_CHANGES,
        json_parser(ConsentChanged),
        handlers.on_consent_changes,
        message_id=lambda c: c.change_id,
    )
    rt.consume(
        topics.SUPPRESSION_CHANGES,
        json_parser(SuppressionChanged),
        handlers.on_suppression_changes,
        message_id=lambda c: c.change_id,
    )
    rt.consume(
        topics.REVIEW_DECISIONS,
        json_parser(ReviewDecision),
        handlers.on_review_decisions,
    )

    async def scheduler() -> None:
        """Fire due delays; any number of replicas may run this (row locks, no leader)."""
        while True:
            try:
                async with rt.db.uow() as uow:
                    fired = await handlers.fire_due_timers(uow)
                    await uow.commit()
            except Exception as exc:  # noqa: BLE001 - keep scheduling through outages
                log.warning("scheduler pass failed", error=str(exc))
                fired = 0
                await asyncio.sleep(1.0)
            if not fired:
                await asyncio.sleep(rt.settings.scheduler_interval_s)

    rt.workers.append(scheduler)
    rt.routes += api_routes(rt)


def api_routes(rt: Runtime) -> list[Route]:
    async def activity(request: Request) -> Response:
        """Per step of a flow: counts by outcome (scheduled, in review, executed,
        skipped by reason) and the profiles behind them (A6 with the dispatcher)."""
        account = request.path_params["account_id"]
        if (denied := rt.auth.guard(request, account)) is not None:
            return denied
        flow_id = request.path_params["flow_id"]
        async with rt.db.pool.acquire() as conn:
            flow = await conn.fetchrow(
                "SELECT version, deleted FROM flows WHERE account_id = $1 AND flow_id = $2",
                account, flow_id,
            )
            rejections = await conn.fetch(
                "SELECT version, errors, rejected_at FROM flow_rejections"
                " WHERE account_id = $1 AND flow_id = $2 ORDER BY version DESC LIMIT 10",
                account, flow_id,
            )
            waiting = await conn.fetch(
                "SELECT t.step_id, r.profile_id, t.due_at FROM timers t JOIN runs r USING (run_id)"
                " WHERE r.account_id = $1 AND r.flow_id = $2 AND t.fired_at IS NULL"
                " ORDER BY t.due_at LIMIT 500",
                account, flow_id,
            )
            steps = await conn.fetch(
                "SELECT e.step_id, e.outcome, e.reason, count(*) AS n,"
                " (array_agg(r.profile_id ORDER BY e.at DESC))[1:50] AS profiles"
                " FROM step_executions e JOIN runs r USING (run_id)"
                " WHERE e.account_id = $1 AND e.flow_id = $2"
                " GROUP BY e.step_id, e.outcome, e.reason ORDER BY e.step_id",
                account, flow_id,
            )
            reviews = await conn.fetch(
                "SELECT alert_id, step_id, status, created_at FROM reviews"
                " WHERE account_id = $1 AND flow_id = $2 AND status = 'in_review'"
                " ORDER BY created_at LIMIT 500",
                account, flow_id,
            )
        if flow is None and not rejections:
            return error(404, "not found")
        by_step: dict[str, dict] = {}
        for w in waiting:
            s = by_step.setdefault(w["step_id"], {"scheduled": [], "outcomes": []})
            s["scheduled"].append({"profile_id": w["profile_id"], "due_at": w["due_at"].isoformat()})
        for row in steps:
            s = by_step.setdefault(row["step_id"], {"scheduled": [], "outcomes": []})
            s["outcomes"].append({
                "outcome": row["outcome"], "reason": row["reason"], "count": row["n"],
                "profiles": row["profiles"],
            })
        return JSONResponse({
            "account_id": account,
            "flow_id": flow_id,
            "version": flow["version"] if flow else None,
            "deleted": flow["deleted"] if flow else None,
            "rejected_versions": [
                {"version": r["version"], "errors": r["errors"]} for r in rejections
            ],
            "in_review": [
                {"alert_id": r["alert_id"], "step_id": r["step_id"]} for r in reviews
            ],
            "steps": by_step,
        })

    async def review(request: Request) -> Response:
        """F5: approve or reject an alert held in manual review."""
        account = request.path_params["account_id"]
        if (denied := rt.auth.guard(request, account)) is not None:
            return denied
        alert_id = request.path_params["alert_id"]
        decision = request.path_params["decision"]
        if decision not in ("approve", "reject"):
            return error(404, "not found")
        async with rt.db.uow() as uow:
            owner = await uow.conn.fetchval(
                "SELECT status FROM reviews WHERE alert_id = $1 AND account_id = $2",
                alert_id, account,
            )
            if owner is None:
                return error(404, "no such alert in review")
            if owner != "in_review":
                return error(409, f"alert already {owner}")
            result = await handlers.decide_reviews(
                uow, [ReviewDecision(alert_id=alert_id, decision=decision, by=f"api:{account}")]
            )
            await uow.commit()
        return JSONResponse({"alert_id": alert_id, "status": result.get(alert_id)})

    return [
        Route("/accounts/{account_id}/flows/{flow_id}/activity", activity),
        Route("/accounts/{account_id}/reviews/{alert_id}/{decision}", review, methods=["POST"]),
    ]
