"""Builders and probes for the flow executor's component tests: definitions, events,
consent and suppression changes as their producers publish them, and reads of the
executor's outputs (topics, HTTP API, its own tables)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from shared.contracts import ConsentChanged, SuppressionChanged, topics
from tests.conftest import Kafka, eventually

ACCOUNTS = [f"fx-{uuid.uuid4().hex[:10]}" for _ in range(30)]


def key_of(account: str) -> str:
    """The API key the tests give `account` (X6: at least 16 characters)."""
    return f"{account}-test-api-key"


API_KEYS = ",".join(f"{a}:{key_of(a)}" for a in [*ACCOUNTS, "globex"])
NPS = {
    "type": "metric",
    "metric": "Left NPS Score",
    "filter": {"property": "score", "op": "lte", "value": 6},
}


def alert(step_id: str = "alert", nxt: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "internal_alert",
        "recipients": ["lead@acme.test"],
        "from_email": "alerts@acme.test",
        "subject": "Detractor {{ person.email }}",
        "body": "{{ event.score }}",
        "next": nxt,
        **extra,
    }


def delay(step_id: str, seconds: int, nxt: str | None) -> dict[str, Any]:
    return {"id": step_id, "type": "delay", "seconds": seconds, "next": nxt}


def flow(
    account: str,
    flow_id: str,
    steps: list[dict[str, Any]],
    version: int = 1,
    trigger: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "account_id": account,
        "flow_id": flow_id,
        "version": version,
        "name": flow_id,
        "trigger": trigger or NPS,
        "steps": steps,
        **extra,
    }


def event(
    account: str,
    pid: str,
    score: int = 3,
    metric: str = "Left NPS Score",
    event_id: str | None = None,
    time: str = "2026-11-23T10:00:00Z",
    historical: bool = False,
    **properties: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id or f"e-{uuid.uuid4().hex}",
        "account_id": account,
        "metric": metric,
        "time": time,
        "historical_import": historical,
        "profile": {
            "id": pid,
            "email": f"{pid}@example.com",
            "phone_number": "+15555550100",
            "properties": properties,
        },
        "properties": {"score": score},
    }


def consent(
    account: str,
    pid: str,
    type_: str = "Unsubscribed from Email Marketing",
    channel: str = "email",
    list_id: str | None = None,
    historical: bool = False,
    at: str = "2026-11-23T10:00:00Z",
    **state: Any,
) -> ConsentChanged:
    return ConsentChanged.model_validate(
        {
            "type": type_,
            "change_id": f"c-{uuid.uuid4().hex}",
            "account_id": account,
            "profile_id": pid,
            "profile": {"id": pid, "email": f"{pid}@example.com", "phone_number": "+15555550100"},
            "channel": channel,
            "list_id": list_id,
            "consented_at": at,
            "historical_import": historical,
            "state": state,
            "occurred_at": at,
        }
    )


def suppression(
    account: str,
    pid: str,
    reason: str,
    suppressions: list[dict[str, Any]],
    at: str = "2026-11-23T10:00:00Z",
) -> SuppressionChanged:
    return SuppressionChanged.model_validate(
        {
            "type": "suppressed",
            "change_id": f"s-{uuid.uuid4().hex}",
            "account_id": account,
            "profile_id": pid,
            "profile": {"id": pid},
            "reason": reason,
            "suppressions": suppressions,
            "occurred_at": at,
        }
    )


async def save(kafka: Kafka, definition: dict[str, Any]) -> None:
    key = f"{definition['account_id']}:{definition['flow_id']}"
    await kafka.send(topics.FLOW_DEFINITIONS, key, definition)


async def send_event(kafka: Kafka, ev: dict[str, Any]) -> None:
    await kafka.send(topics.PROFILE_EVENTS, ev["profile"]["id"], ev)


async def api(
    base_url: str, account: str, path: str, method: str = "GET", key: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or key_of(account)}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        return await client.request(method, f"/accounts/{account}{path}", headers=headers)


async def any_hour(base_url: str, account: str) -> None:
    """Open the account's sending window all day (F8), for tests that are not about
    quiet hours and must not depend on the wall clock."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        r = await client.put(
            f"/accounts/{account}/sending-settings",
            json={"window_start": "00:00", "window_end": "24:00"},
            headers={"Authorization": f"Bearer {key_of(account)}"},
        )
    assert r.status_code == 200, r.text


# Numbers with one zone each in phonenumbers' data, US first (F8 tests pick by local time).
ONE_ZONE_NUMBERS = {
    "+12125550100": "America/New_York",
    "+13125550100": "America/Chicago",
    "+13035550100": "America/Denver",
    "+14155550100": "America/Los_Angeles",
    "+18085550100": "Pacific/Honolulu",
    "+4930123456": "Europe/Berlin",
    "+61255550100": "Australia/Sydney",
    "+81312345678": "Asia/Tokyo",
    "+5511999999999": "America/Sao_Paulo",
}


def number_where(sending: bool, margin: timedelta = timedelta(minutes=10)) -> tuple[str, ZoneInfo]:
    """A number whose local time is now inside the default sending window (08:00–21:00)
    or inside the quiet hours, at least `margin` from either boundary."""
    now = datetime.now(UTC)
    for number, name in ONE_ZONE_NUMBERS.items():
        zone = ZoneInfo(name)
        times = [(now + d).astimezone(zone) for d in (-margin, timedelta(0), margin)]
        inside = [8 <= t.hour < 21 for t in times]
        if inside == [sending] * 3:
            return number, zone
    raise AssertionError(f"no number is {'inside' if sending else 'outside'} the window now")


def next_local_0800(zone: ZoneInfo) -> datetime:
    """The next 08:00 in `zone`, in UTC."""
    local = datetime.now(UTC).astimezone(zone)
    day = local.date() if local.hour < 8 else local.date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, 8, tzinfo=zone).astimezone(UTC)


async def activity_api(base_url: str, account: str, flow_id: str) -> dict[str, Any]:
    r = await api(base_url, account, f"/flows/{flow_id}/activity")
    return r.json() if r.status_code == 200 else {}


async def in_force(base_url: str, account: str, flow_id: str, version: int) -> dict[str, Any]:
    """Wait until `version` of the flow is in force."""

    async def probe() -> dict[str, Any] | None:
        doc = await activity_api(base_url, account, flow_id)
        return doc if doc.get("version") == version and not doc.get("deleted") else None

    return await eventually(probe)


_marks: list[str] = []


async def barrier(base_url: str, kafka: Kafka, account: str, pid: str) -> None:
    """Wait until every event sent so far for `pid` is processed: same key, same
    partition, so once a later marker event shows in the profile read model, all
    earlier ones were handled (the account needs a live flow)."""
    mark = uuid.uuid4().hex
    _marks.append(mark)
    at = f"2030-01-01T00:{len(_marks) // 60 % 60:02d}:{len(_marks) % 60:02d}Z"
    await send_event(kafka, event(account, pid, metric="Barrier", time=at, barrier=mark))

    async def probe() -> bool:
        r = await api(base_url, account, f"/profiles/{pid}/reachability")
        return (
            r.status_code == 200
            and (r.json()["profile"] or {}).get("properties", {}).get("barrier") == mark
        )

    await eventually(probe)


async def outputs(kafka: Kafka, topic: str, account: str) -> list[dict[str, Any]]:
    return [v for _, v in await kafka.read_all(topic) if v and v.get("account_id") == account]


async def rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "flow_executor"})
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()
