"""A profile's consent (C14), its audit trail (C2), operator consent acts (C11), and its
proof: receipts (C15), their verification (C16) and explain (C17)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.consent import handlers
from services.consent.adapters import queries
from services.consent.adapters.repository import receipt_chain, receipt_profiles
from services.consent.bootstrap import WorkFactory
from services.consent.domain.explain import explain as explain_answer
from services.consent.domain.model import CHANNEL_SLOTS, ProfileConsent
from services.consent.domain.reachability import can_receive, shown_reasons
from services.consent.domain.receipts import Hasher, Receipt, Verdict, verify
from services.consent.ports import Key
from shared.contracts import ConsentCommand, topics, utcnow
from shared.http import error, iso
from shared.operator import OPERATOR_ACTS, command_id, invalid, json_body, queue_command
from shared.privacy import hash_secret, profile_hash, subject_hash, subject_hashes
from shared.runtime import Runtime


def profile_view(
    state: ProfileConsent,
    suppressions: list[dict[str, Any]],
    list_id: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
    erased: bool = False,
) -> dict[str, Any]:
    """C14: per channel status, timestamps, method, `can_receive` and suppression reasons.
    P2: a profile held by an erase (its id, address or number) can receive nothing."""
    view = state.view()
    channels = {}
    for key in CHANNEL_SLOTS:
        ch = view[key]
        sup_channel = "sms" if key.startswith("sms") else key
        channels[key] = {
            "status": ch["status"],
            "consented_at": iso(ch["consented_at"]),
            "method": ch["method"],
            "phone_number": ch["phone_number"],
            "can_receive": not erased
            and can_receive(state, suppressions, key, list_id, client_id, user_id),
            "suppressions": shown_reasons(suppressions, sup_channel) if key != "push" else [],
        }
    return {
        "channels": channels,
        "lists": view["lists"],
        "opt_outs": view["opt_outs"],
        "phone_number": state.phone_number,
        "erased_hold": erased,
    }


async def _read(
    rt: Runtime, account: str, profile_id: str
) -> tuple[queries.StoredProfile | None, list[dict[str, Any]], bool, dict[str, Any]]:
    """What the read side answers from (C14, C17): the stored profile, its suppressions,
    whether an erase holds it (P2) and its attributes (without the held subjects)."""
    stored = await queries.profile(rt.db.pool, account, profile_id)
    sups = await queries.suppressions(rt.db.pool, account, profile_id)
    profile = dict(stored.profile) if stored else {}
    holding = profile.pop(handlers.HELD_BY, [])
    secret = hash_secret(rt.settings)
    held = await queries.erased(
        rt.db.pool,
        account,
        [
            *subject_hashes(secret, profile.get("email"), profile.get("phone_number")),
            profile_hash(secret, profile_id),
            *holding,
        ],
    )
    return stored, sups, held, profile


async def show(rt: Runtime, request: Request, account: str) -> Response:
    """C14: a profile's consent per channel with can_receive (S6) and suppressions.
    P2: an erased profile id, or a profile carrying an erased address or number in any
    spelling (I1), is shown with `erased_hold` and can receive nothing."""
    profile_id = request.path_params["profile_id"]
    stored, sups, held, profile = await _read(rt, account, profile_id)
    if stored is None and not sups and not held:
        return error(404, "profile not found")
    state = stored.state if stored else ProfileConsent.from_json(None)
    q = request.query_params
    pending = await queries.pending_confirmations(rt.db.pool, account, profile_id)
    return JSONResponse(
        {
            "account_id": account,
            "profile_id": profile_id,
            "profile": profile,
            **profile_view(
                state, sups, q.get("list_id"), q.get("client_id"), q.get("user_id"), held
            ),
            "pending_confirmations": [
                {"list_id": p.list_id, "scope": p.scope, "requested_at": p.requested_at.isoformat()}
                for p in pending
            ],
        }
    )


async def history(rt: Runtime, request: Request, account: str) -> Response:
    """C2: the append-only audit trail of a profile, oldest first."""
    profile_id = request.path_params["profile_id"]
    rows = await queries.history(rt.db.pool, account, profile_id)
    return JSONResponse(
        {
            "account_id": account,
            "profile_id": profile_id,
            "history": [{k: iso(v) for k, v in r.items()} for r in rows],
        }
    )


def operator_command(
    rt: Runtime, request: Request, account: str, profile: dict, body: dict
) -> ConsentCommand:
    """The operator's act as a command (raises ValidationError)."""
    return ConsentCommand(
        command_id=command_id(),
        account_id=account,
        profile=profile,
        action=request.path_params["action"],
        channel=body.get("channel", "email"),
        purpose=body.get("purpose", "marketing"),
        list_id=body.get("list_id"),
        method=body.get("method", "manual"),
        scope=body.get("scope") or {},
        evidence=body.get("evidence"),
        notice=body.get("notice"),  # C15: kept in the act's receipt
        jurisdiction=body.get("jurisdiction"),
        consented_at=utcnow(),
        actor=rt.auth.actor(request),
    )


async def act(rt: Runtime, work: WorkFactory, request: Request, account: str) -> Response:
    """Operator subscribe / unsubscribe / resubscribe (C11: evidence or 422)."""
    profile_id = request.path_params["profile_id"]
    if request.path_params["action"] not in OPERATOR_ACTS:
        return error(404, "not found")
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    stored = await queries.profile(rt.db.pool, account, profile_id)
    known = stored.profile if stored else {}
    profile = {**known, **(body.get("profile") or {}), "id": profile_id}
    try:
        cmd = operator_command(rt, request, account, profile, body)
    except ValidationError as exc:
        return invalid(exc)
    state = stored.state if stored else ProfileConsent.from_json(None)
    async with rt.db.uow() as uow:
        rejection = await handlers.refuse_operator_act(work(uow), cmd, state)
        if rejection is not None:
            await uow.commit()
            return error(422, rejection)
    return await queue_command(rt.db, topics.CONSENT_COMMANDS, profile_id, cmd)


# --- proof: receipts (C15), verify (C16), explain (C17) ------------------------------


def keyed_hasher(rt: Runtime) -> Hasher:
    """The keyed hash receipts commit to personal values with (P2)."""
    secret = hash_secret(rt.settings)
    return lambda kind, value: subject_hash(secret, kind, value)


def receipt_view(r: Receipt) -> dict[str, Any]:
    """A receipt as served: the `ConsentReceipt` document, and the personal values it
    commits to while they are held (none after an erase)."""
    return {**r.document(), "personal": dict(r.personal) if r.personal else None}


async def receipts(rt: Runtime, request: Request, account: str) -> Response:
    """C15: a profile's consent receipts, oldest first."""
    profile_id = request.path_params["profile_id"]
    async with rt.db.pool.acquire() as conn:
        chain = await receipt_chain(conn, Key(account, profile_id))
    return JSONResponse(
        {
            "account_id": account,
            "profile_id": profile_id,
            "head": chain.head.hash if chain.head else None,
            "receipts": [receipt_view(r) for r in chain.receipts],
        }
    )


async def _verify(rt: Runtime, conn: Any, account: str, profile_id: str) -> Verdict:
    chain = await receipt_chain(conn, Key(account, profile_id))
    return verify(profile_id, chain.receipts, chain.head, chain.history, keyed_hasher(rt))


async def verify_profile(rt: Runtime, request: Request, account: str) -> Response:
    """C16: recompute a profile's chain; the first receipt that fails and why."""
    async with rt.db.pool.acquire() as conn:
        verdict = await _verify(rt, conn, account, request.path_params["profile_id"])
    return JSONResponse({"account_id": account, **verdict.to_json()})


async def verify_account(rt: Runtime, request: Request, account: str) -> Response:
    """C16: every chain of the account; `ok` only when all verify. Each failing profile
    is listed with its first failing receipt."""
    async with rt.db.pool.acquire() as conn:
        verdicts = [
            await _verify(rt, conn, account, p) for p in await receipt_profiles(conn, account)
        ]
    failed = [v.to_json() for v in verdicts if not v.ok]
    return JSONResponse(
        {
            "account_id": account,
            "ok": not failed,
            "profiles": len(verdicts),
            "receipts": sum(v.receipts for v in verdicts),
            "failed": failed,
        }
    )


CHANNELS = ("email", "sms", "push")
PURPOSES = ("marketing", "transactional")


async def explain(rt: Runtime, request: Request, account: str) -> Response:
    """C17: may a message go now on `channel` (for `list_id`, on behalf of `client_id`
    and `user_id`), and on which facts. Equal to the read side's `can_receive`."""
    profile_id = request.path_params["profile_id"]
    q = request.query_params
    channel, purpose = q.get("channel", "email"), q.get("purpose", "marketing")
    if channel not in CHANNELS:
        return error(422, f"channel must be one of {', '.join(CHANNELS)}")
    if purpose not in PURPOSES:
        return error(422, f"purpose must be one of {', '.join(PURPOSES)}")
    stored, sups, held, _ = await _read(rt, account, profile_id)
    state = stored.state if stored else ProfileConsent.from_json(None)
    async with rt.db.pool.acquire() as conn:
        chain = await receipt_chain(conn, Key(account, profile_id))
    answer = explain_answer(
        state,
        sups,
        chain.receipts,
        channel,
        purpose,
        q.get("list_id") or None,
        q.get("client_id") or None,
        q.get("user_id") or None,
        held,
    )
    return JSONResponse({"account_id": account, "profile_id": profile_id, **answer})
