"""What the executor believes about a profile (F7), and what each F6 decision rests on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.flow_executor.adapters import read_model
from services.flow_executor.adapters.repository import PostgresFlowRepository, receipts_in_force
from services.flow_executor.bootstrap import Executor
from services.flow_executor.domain.erasure import ErasureHold, erasure_block, person_subjects
from services.flow_executor.domain.reachability import grounds_of
from services.flow_executor.ports import SubjectQuery
from shared.domain import reachability as reach
from shared.http import error, iso
from shared.runtime import Runtime


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


def endpoint(rt: Runtime, executor: Executor) -> Callable[[Request], Awaitable[Response]]:
    secret = executor.secret

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
