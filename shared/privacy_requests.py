"""Handling `privacy-requests` in a service (P1): resolve the person to the profiles this
service holds, export or erase them on the batch's transaction, publish this service's
part on `privacy-results`.

The SQL is each service's own (`services/<name>/adapters/privacy.py`, bound to the
batch's transaction as the work's `privacy`); this module is the use case they share, so
the four parts have one shape.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from shared.contracts import PrivacyRequest, PrivacyResult, topics, utcnow
from shared.domain.identity import derived_id
from shared.ports import Outbox
from shared.received import Received


class PrivacyStore(Protocol):
    """One service's data about people, as the privacy use case needs it (bound to the
    batch's transaction)."""

    service: str

    async def resolve(self, request: PrivacyRequest) -> list[str]:
        """The profile ids this service holds for the person the request names."""

    async def export(self, account_id: str, profile_ids: list[str]) -> dict[str, Any]:
        """Everything this service holds about those profiles (JSON-ready)."""

    async def erase(self, request: PrivacyRequest, profile_ids: list[str]) -> dict[str, int]:
        """Remove or anonymise their personal data; rows touched per table."""

    async def drop_unpublished(self, request: PrivacyRequest, profile_ids: list[str]) -> int:
        """Unpublished outputs about the person (keyed by profile id, or by the address
        for SMS replies): erased before they reach a topic. What was published already
        is on the broker under its retention."""


class PrivacyWork(Outbox, Protocol):
    """A unit of work that can answer privacy requests."""

    privacy: PrivacyStore


def message_id(request: PrivacyRequest) -> str:
    """The inbox id of a request: one export or erase per request id and account."""
    return derived_id(request.account_id, request.request_id)


async def handle(batch: list[Received[PrivacyRequest]], work: PrivacyWork) -> None:
    """Act on each request in order and publish this service's part (P1–P3)."""
    store = work.privacy
    for item in batch:
        request = item.message
        ids = await store.resolve(request)
        data = erased = None
        if request.action == "export":
            data = await store.export(request.account_id, ids)
        else:
            erased = await store.erase(request, ids)
            erased["outbox"] = await store.drop_unpublished(request, ids)
        work.publish(
            topics.PRIVACY_RESULTS,
            request.request_id,
            result(request, store.service, ids, fit(data), erased),
        )


MAX_PART_BYTES = 900_000


def fit(data: dict[str, Any] | None, limit: int = MAX_PART_BYTES) -> dict[str, Any] | None:
    """An export part that fits in one Kafka message (the broker's default limit is
    1 MB; a record it refuses would block the outbox): the longest lists are cut, oldest
    entries kept, and the part says so (`truncated`, with the full counts)."""
    if data is None or len(json.dumps(data, default=str)) <= limit:
        return data
    counts = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    cut = dict(data)
    while len(json.dumps(cut, default=str)) > limit:
        longest = max(
            (k for k, v in cut.items() if isinstance(v, list) and v),
            key=lambda k: len(cut[k]),
            default=None,
        )
        if longest is None:
            return {"truncated": True, "counts": counts}
        cut[longest] = cut[longest][: len(cut[longest]) // 2]
    return {**cut, "truncated": True, "counts": counts}


def result(
    request: PrivacyRequest,
    service: str,
    profile_ids: list[str],
    data: dict[str, Any] | None,
    erased: dict[str, int] | None,
) -> PrivacyResult:
    """A service's part of `request` as published on `privacy-results`."""
    return PrivacyResult(
        request_id=request.request_id,
        account_id=request.account_id,
        service=service,  # type: ignore[arg-type]
        action=request.action,
        profile_ids=profile_ids,
        data=data,
        erased=erased,
        completed_at=utcnow(),
    )
