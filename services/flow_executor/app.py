"""The flow executor's wiring: consumers, the delay scheduler and its HTTP API."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.flow_executor import flow_list, handlers
from services.flow_executor.adapters import mapping, read_model
from services.flow_executor.adapters.privacy import FlowPrivacy
from services.flow_executor.adapters.repository import PostgresFlowRepository, receipts_in_force
from services.flow_executor.adapters.unit_of_work import FlowUnitOfWork
from services.flow_executor.domain.erasure import ErasureHold, erasure_block, person_subjects
from services.flow_executor.domain.reachability import grounds_of
from services.flow_executor.domain.sending_window import (
    DEFAULT_SETTINGS,
    WAITING_QUIET_HOURS,
    settings_view,
    updated_settings,
)
from services.flow_executor.ports import SubjectQuery
from shared.contracts import (
    ConsentChanged,
    PrivacyRequest,
    ProfileEvent,
    ReviewDecision,
    SuppressionChanged,
    topics,
)
from shared.db.errors import DB_ERRORS
from shared.db.uow import UnitOfWork
from shared.dead_letters_http import dead_letter_routes
from shared.domain import reachability as reach
from shared.http import error, iso
from shared.kafka import json_parser
from shared.logging import get_logger
from shared.loop_health import report_progress, report_trouble
from shared.operator import json_body
from shared.privacy import hash_secret
from shared.privacy_requests import handle, message_id
from shared.runtime import Runtime

log = get_logger(__name__)

MAX_LIST = 1000


class SchedulerSettings(BaseSettings):
    """The scheduler's own tuning (`FLOW_SCHEDULER_BATCH`): how many due delays one
    pass claims. Smaller batches spread a burst of due delays over more replicas."""

    model_config = SettingsConfigDict(env_prefix="FLOW_SCHEDULER_", extra="ignore")

    batch: int = 500


def on_work(
    handler: Callable[[FlowUnitOfWork, Any], Awaitable[None]], secret: str | None
) -> Callable[[UnitOfWork, Any], Awaitable[None]]:
    """A use case as a batch handler: its ports on the batch's unit of work, with the
    key of address hashes (P2)."""

    async def handle_batch(uow: UnitOfWork, items: Any) -> None:
        await handler(FlowUnitOfWork(uow, secret), items)

    return handle_batch


def build(rt: Runtime) -> None:
    secret = hash_secret(rt.settings)
    rt.consume(
        topics.FLOW_DEFINITIONS,
        mapping.parse_definition,
        on_work(handlers.save_definitions, secret),
        message_id=lambda d: d.message_id,
        consumer=handlers.DEFINITIONS,
    )
    # No inbox claim for profile events: the run's id, derived from the event id, is what
    # dedupes an entry (F2), and the profile merge is safe to repeat (see the handler).
    rt.consume(
        topics.PROFILE_EVENTS,
        json_parser(ProfileEvent),
        on_work(handlers.enter_from_events, secret),
    )
    rt.consume(
        topics.CONSENT_CHANGES,
        json_parser(ConsentChanged),
        on_work(handlers.on_consent_changes, secret),
        message_id=lambda c: c.change_id,
    )
    rt.consume(
        topics.SUPPRESSION_CHANGES,
        json_parser(SuppressionChanged),
        on_work(handlers.on_suppression_changes, secret),
        message_id=lambda c: c.change_id,
    )
    rt.consume(
        topics.REVIEW_DECISIONS,
        json_parser(ReviewDecision),
        on_work(handlers.on_review_decisions, secret),
    )
    rt.consume(
        topics.PRIVACY_REQUESTS,
        json_parser(PrivacyRequest),
        partial(handle, store=FlowPrivacy(secret)),
        message_id=message_id,
    )
    rt.workers.append(scheduler(rt, SchedulerSettings().batch, secret))
    rt.routes += api_routes(rt)


def scheduler(rt: Runtime, batch: int, secret: str | None) -> Callable[[], Awaitable[None]]:
    """The delay scheduler's loop (F3). Any number of replicas may run it: `FOR UPDATE
    SKIP LOCKED` hands each due row to one of them, no leader needed."""
    replica = f"{socket.gethostname()}:{os.getpid()}"

    async def fire(limit: int) -> int:
        async with rt.db.uow() as uow:
            fired = await handlers.fire_due_timers(FlowUnitOfWork(uow, secret), limit, replica)
            await uow.commit()
        return fired

    async def fire_singly(limit: int) -> int:
        done = 0
        for _ in range(limit):
            try:
                if not await fire(1):
                    break
            except DB_ERRORS:
                break
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("a due delay cannot be fired; set aside", error=reason)
                try:
                    async with rt.db.pool.acquire() as conn:
                        repo = PostgresFlowRepository(conn)
                        if not await repo.fail_next_due_timer(replica, reason):
                            break
                except DB_ERRORS:
                    break
            done += 1
        return done

    async def run() -> None:
        """Fire due delays until the service stops."""
        while True:
            try:
                fired = await fire(batch)
                report_progress("scheduler")
            except DB_ERRORS as exc:
                log.warning("scheduler pass failed", error=str(exc))
                report_trouble("scheduler", f"database: {exc}")
                fired = 0
                await asyncio.sleep(1.0)
            except Exception as exc:
                # One run whose walk raises must not hold every due delay behind it:
                # fire one at a time, and set aside the one that fails (F3).
                log.exception("scheduler pass failed; firing one at a time", error=repr(exc))
                fired = await fire_singly(batch)
            if fired < batch:
                await asyncio.sleep(rt.settings.scheduler_interval_s)
            else:
                await asyncio.sleep(0)  # let consumers and the outbox relay run

    return run


def _limit(request: Request) -> int:
    try:
        return max(1, min(MAX_LIST, int(request.query_params.get("limit", "100"))))
    except ValueError:
        return 100


def _waiting(w: Any) -> dict[str, Any]:
    """A profile waiting at a step: on a delay, or (F8) a message step waiting for the
    sending window (`reason` `Waiting: quiet hours`, `due_at` the release time)."""
    return {
        "profile_id": w["profile_id"],
        "run_id": str(w["run_id"]),
        "due_at": iso(w["due_at"]),
        "reason": WAITING_QUIET_HOURS if w["kind"] == "quiet_hours" else None,
    }


def activity_document(account_id: str, flow_id: str, found: dict[str, Any]) -> dict[str, Any]:
    """The activity of one flow per step (A6 with the dispatcher's sent/skipped)."""
    steps: dict[str, dict[str, Any]] = {}

    def step(step_id: str) -> dict[str, Any]:
        return steps.setdefault(
            step_id,
            {
                "scheduled": {"count": 0, "profiles": []},
                "in_review": {"count": 0, "alerts": []},
                "executed": {"count": 0, "profiles": []},
                "skipped": {"count": 0, "reasons": []},
            },
        )

    flow = found["flow"]
    for s in (flow["definition"] or {}).get("steps", []) if flow else []:
        step(s["id"])["type"] = s["type"]
    for w in found["waiting"]:
        s = step(w["step_id"])["scheduled"]
        s["count"] = w["n"]
        s["profiles"].append(_waiting(w))
    for p in found["passed"]:
        step(p["step_id"])["delay_passed"] = p["n"]
    for h in found["held"]:
        s = step(h["step_id"])["in_review"]
        s["count"] = h["n"]
        s["alerts"].append(
            {
                "alert_id": h["alert_id"],
                "profile_id": h["profile_id"],
                "held_at": iso(h["created_at"]),
            }
        )
    reasons: dict[tuple[str, str], dict[str, Any]] = {}
    for o in found["outcomes"]:
        s = step(o["step_id"])
        if o["outcome"] == "executed":
            s["executed"]["count"] = o["n"]
            s["executed"]["profiles"].append(o["profile_id"])
            continue
        key = (o["step_id"], o["reason"])
        if key not in reasons:
            reasons[key] = {"reason": o["reason"], "count": o["n"], "profiles": []}
            s["skipped"]["reasons"].append(reasons[key])
            s["skipped"]["count"] += o["n"]
        reasons[key]["profiles"].append(o["profile_id"])
    return {
        "account_id": account_id,
        "flow_id": flow_id,
        "version": flow["version"] if flow else None,
        "deleted": flow["deleted"] if flow else None,
        "rejected_versions": [
            {"version": r["version"], "errors": r["errors"]} for r in found["rejections"]
        ],
        "steps": steps,
    }


def activity_endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def activity(request: Request, account: str) -> Response:
        """Per step of a flow: profiles waiting on a delay, actions in review, executed,
        and skipped by reason, each with its count and the newest entries (`?limit=`)."""
        flow_id = request.path_params["flow_id"]
        async with rt.db.pool.acquire() as conn:
            found = await read_model.flow_activity(conn, account, flow_id, _limit(request))
        if found is None:
            return error(404, "not found")
        return JSONResponse(activity_document(account, flow_id, found))

    return rt.auth.guarded(activity)


def reviews_endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def reviews(request: Request, account: str) -> Response:
        """The account's actions held in manual review, oldest first."""
        async with rt.db.pool.acquire() as conn:
            rows = await read_model.reviews_in(conn, account, _limit(request))
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


def decide_endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def decide(request: Request, account: str) -> Response:
        """F5: approve or reject an action held in manual review."""
        alert_id = request.path_params["alert_id"]
        decision = request.path_params["decision"]
        if decision not in ("approve", "reject"):
            return error(404, "not found")
        by = rt.auth.actor(request) or f"api:{account}"  # C2: the key's name (W4)
        async with rt.db.uow() as uow:
            held = await read_model.run_of_review(uow.conn, alert_id)
            if held is None or held["account_id"] != account:
                return error(404, "no such alert in review")
            if held["status"] != "in_review":
                return error(409, f"alert already {held['status']}")
            result = await handlers.decide_reviews(
                FlowUnitOfWork(uow, hash_secret(rt.settings)),
                [ReviewDecision(alert_id=alert_id, decision=decision, by=by)],
            )
            await uow.commit()
        if alert_id not in result:
            return error(409, "alert already decided")
        return JSONResponse({"alert_id": alert_id, "status": result[alert_id]})

    return rt.auth.guarded(decide)


def reachability_document(
    account_id: str,
    profile_id: str,
    row: Any,
    hold: ErasureHold | None,
    where: Mapping[str, str | None],
) -> dict[str, Any]:
    """S6 + C10 as F6 decides it (the shared rule over this read model) per channel,
    after the erase hold (P2) that comes first, with what each answer rests on (C17):
    the receipt in force for the deciding consent and the suppressions that count."""
    consent = row["consent"] if row else None
    profile = (row["profile"] if row else None) or {}
    suppressions = (row["suppressions"] if row else None) or []
    receipts = receipts_in_force(row["receipts"] if row else None)
    scope = {k: where.get(k) for k in ("list_id", "client_id", "user_id")}
    can = {
        channel: erasure_block(channel, hold, consent)
        or reach.blocked(consent, suppressions, channel, contact=profile, **scope)
        for channel in reach.CHANNELS
    }
    grounds = {
        channel: None
        if erasure_block(channel, hold, consent)
        else grounds_of(consent, suppressions, receipts, channel, **scope)
        for channel in reach.CHANNELS
    }
    return {
        "account_id": account_id,
        "profile_id": profile_id,
        "can_receive": {c: reason is None for c, reason in can.items()},
        "blocked": {c: reason for c, reason in can.items() if reason},
        "erased_at": iso(hold.erased_at) if hold else None,
        "consent": consent,
        "consent_at": iso(row["consent_at"]) if row else None,
        "receipts": receipts,
        "grounds": {
            c: {"receipt_id": g.receipt_id, "suppressions": g.suppression_list()} if g else None
            for c, g in grounds.items()
        },
        "suppressions": suppressions,
        "suppressions_at": iso(row["suppressions_at"]) if row else None,
        "profile": row["profile"] if row else None,
    }


def reachability_endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    secret = hash_secret(rt.settings)

    async def reachability(request: Request, account: str) -> Response:
        """What the executor believes about a profile (F7): consent, suppressions, the
        newest profile data and an erase that holds it (P2), the inputs of every F6
        decision. An erased profile id is answered, held, though nothing else is kept."""
        profile_id = request.path_params["profile_id"]
        key = (account, profile_id)
        async with rt.db.pool.acquire() as conn:
            row = await read_model.profile_read_model(conn, account, profile_id)
            person = row["profile"] if row else None
            holds = await PostgresFlowRepository(conn).erasure_holds(
                [SubjectQuery(account, profile_id, person_subjects(secret, profile_id, person))]
            )
        if row is None and key not in holds:
            return error(404, "not found")
        where = {k: request.query_params.get(k) for k in ("list_id", "client_id", "user_id")}
        doc = reachability_document(account, profile_id, row, holds.get(key), where)
        return JSONResponse(doc)

    return rt.auth.guarded(reachability)


def sending_settings_endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def sending_settings(request: Request, account: str) -> Response:
        """F8: the account's sending window, zone and email quiet hours. PUT changes the
        fields it gives (`"08:00"`, `"21:00"`, an IANA zone, true/false); 422 with the
        reason for a bad window or zone."""
        async with rt.db.uow() as uow:
            repo = PostgresFlowRepository(uow.conn)
            current = (await repo.sending_settings([account])).get(account, DEFAULT_SETTINGS)
            if request.method == "PUT":
                body = await json_body(request)
                if isinstance(body, Response):
                    return body
                updated = updated_settings(current, body)
                if isinstance(updated, str):
                    return error(422, updated)
                await repo.save_sending_settings(account, updated)
                await uow.commit()
                current = updated
        return JSONResponse({"account_id": account, **settings_view(current)})

    return rt.auth.guarded(sending_settings)


def api_routes(rt: Runtime) -> list[Route]:
    """The executor's HTTP API under `/accounts/{account_id}/` (an account's key)."""
    return [
        Route("/accounts/{account_id}/flows", flow_list.endpoint(rt)),
        Route("/accounts/{account_id}/flows/{flow_id}/activity", activity_endpoint(rt)),
        Route("/accounts/{account_id}/reviews", reviews_endpoint(rt)),
        Route(
            "/accounts/{account_id}/reviews/{alert_id}/{decision}",
            decide_endpoint(rt),
            methods=["POST"],
        ),
        Route(
            "/accounts/{account_id}/profiles/{profile_id}/reachability",
            reachability_endpoint(rt),
        ),
        Route(
            "/accounts/{account_id}/sending-settings",
            sending_settings_endpoint(rt),
            methods=["GET", "PUT"],
        ),
        *dead_letter_routes(rt, "flow_executor"),
    ]
