"""Account-wide reads (C14): the consent CSV export and the not-opted-in segment."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from services.consent.adapters import queries
from services.consent.domain.reachability import shown_reasons
from shared.http import iso
from shared.runtime import Runtime

CSV_HEADER = "profile_id,email,email_marketing_consent,consented_at,method,email_suppressions\n"
SEGMENT_LIMIT = 10_000


def csv_line(row: queries.ExportRow) -> str:
    """One profile's line: email consent, suppressions as a separate column."""
    reasons = ";".join(
        f"{x['reason']}" + (f"@{x['list_id']}" if x["list_id"] else "")
        for x in shown_reasons(row.suppressions, "email")
    )
    values = (
        row.profile_id,
        row.email or "",
        row.email_status,
        iso(row.email_consented_at) or "",
        row.email_method or "",
        reasons,
    )
    return ",".join(_csv(v) for v in values) + "\n"


async def export_csv(rt: Runtime, request: Request, account: str) -> Response:
    """C14: email-marketing consent per profile, suppressions as a separate column."""

    async def lines() -> AsyncIterator[str]:
        yield CSV_HEADER
        async for row in queries.export_rows(rt.db.pool, account):
            yield csv_line(row)

    return StreamingResponse(
        lines(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{account}-consent.csv"'},
    )


async def not_opted_in(rt: Runtime, request: Request, account: str) -> Response:
    """C14: profiles reachable by email that never subscribed."""
    limit = min(int(request.query_params.get("limit", "1000")), SEGMENT_LIMIT)
    after = request.query_params.get("after", "")
    profiles = await queries.not_opted_in(rt.db.pool, account, after, limit)
    return JSONResponse(
        {
            "account_id": account,
            "segment": "not_opted_in",
            "profiles": profiles,
            "next_after": profiles[-1]["profile_id"] if len(profiles) == limit else None,
        }
    )


def _csv(value: str) -> str:
    text = str(value)
    if text[:1] in ("=", "+", "-", "@"):  # no formula injection in spreadsheets
        text = "'" + text
    if any(c in text for c in ',"\n\r'):
        text = '"' + text.replace('"', '""') + '"'
    return text
