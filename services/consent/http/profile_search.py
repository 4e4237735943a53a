"""Find a profile by its id, or by an email address or phone number in any spelling (I1):
what the operator console's search box asks. The address is put in its normal form
(`shared.domain.identity`) and looked up as the service looks up opt-outs, so
`ADA@Example.COM` finds the profile that carries `ada@example.com`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.consent.adapters import queries
from services.consent.adapters.repository import PostgresConsentRepository
from shared.domain.identity import email_identity, phone_identity
from shared.http import error
from shared.runtime import Runtime

MOST = 50


def identities(text: str) -> list[str]:
    """The identities a search text may name: an email's normal form when it has an
    `@`, a phone number's E.164 form when it is mostly digits."""
    if "@" in text:
        key = email_identity(text)
        return [f"email:{key}"] if key else []
    digits = sum(ch.isdigit() for ch in text)
    if digits >= 6 and all(ch.isdigit() or ch in "+-(). /" for ch in text.strip()):
        number = phone_identity(text)
        return [f"phone:{number}"] if number else []
    return []


async def find(rt: Runtime, request: Request, account: str) -> Response:
    """Profiles whose id is `q`, or that carry the email address or phone number `q` in
    any spelling (I1), with their email and phone number; at most 50."""
    text = (request.query_params.get("q") or "").strip()
    if not text:
        return error(422, "q: give a profile id, an email address or a phone number")
    found: dict[str, str] = {}
    if await queries.profile(rt.db.pool, account, text) is not None:
        found[text] = "id"
    wanted = [(account, i) for i in identities(text)]
    if wanted:
        async with rt.db.uow() as uow:  # read only: rolled back
            by_identity = await PostgresConsentRepository(uow).profiles_by_identity(wanted)
        for (_, identity), ids in by_identity.items():
            for pid in ids:
                found.setdefault(pid, identity.partition(":")[0])
    profiles: list[dict[str, Any]] = []
    for pid, matched in list(found.items())[:MOST]:
        stored = await queries.profile(rt.db.pool, account, pid)
        attrs = stored.profile if stored else {}
        profiles.append(
            {
                "profile_id": pid,
                "matched": matched,
                "email": attrs.get("email"),
                "phone_number": attrs.get("phone_number"),
            }
        )
    return JSONResponse({"account_id": account, "query": text, "profiles": profiles})
