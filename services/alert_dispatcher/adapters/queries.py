"""Read-side queries of the dispatcher's HTTP API (A1, A4, A6, A8): what the marketer's
screens show, read outside any unit of work. Each returns small records; the HTTP
modules turn them into JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.db import mail_queue
from shared.pages import accounts as page_accounts
from shared.pages.accounts import PageSettings


@dataclass(frozen=True)
class Rejection:
    version: int
    errors: list[str]
    rejected_at: datetime


@dataclass(frozen=True)
class ActionRow:
    step_id: str
    flow_version: int
    mode: str
    recipients: list[str]


@dataclass(frozen=True)
class FlowAlerts:
    """A flow as this service holds it (`version` is None when it has none in force)."""

    version: int | None
    deleted: bool
    rejections: list[Rejection]
    actions: list[ActionRow]
    statuses: dict[str, str]


@dataclass(frozen=True)
class DeliveryRow:
    email: str
    status: str
    error: str | None
    deferred_until: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True)
class AlertRow:
    alert_id: str
    flow_id: str
    step_id: str
    profile_id: str
    status: str
    reason: str | None
    requested_at: datetime
    completed_at: datetime | None
    deliveries: list[DeliveryRow]


@dataclass(frozen=True)
class StatusCount:
    status: str
    reason: str | None
    count: int


@dataclass(frozen=True)
class ActionAlerts:
    action: ActionRow | None
    statuses: dict[str, str]
    counts: list[StatusCount]
    alerts: list[AlertRow]


@dataclass(frozen=True)
class RecipientRow:
    email: str
    status: str
    confirmed_at: datetime | None
    disabled_at: datetime | None
    actions: list[str]


async def statuses(conn: asyncpg.Connection, account: str, emails: list[str]) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT email, status FROM recipients WHERE account_id = $1 AND email = ANY($2::text[])",
        account,
        emails,
    )
    return {r["email"]: r["status"] for r in rows}


async def flow_alerts(conn: asyncpg.Connection, account: str, flow_id: str) -> FlowAlerts | None:
    """The flow's version in force, its rejected versions (newest first, up to 20) and its
    alert actions; None when this service never heard of the flow."""
    current = await conn.fetchrow(
        "SELECT version, deleted FROM flow_versions WHERE account_id = $1 AND flow_id = $2",
        account,
        flow_id,
    )
    rejections = await conn.fetch(
        "SELECT version, errors, rejected_at FROM flow_rejections"
        " WHERE account_id = $1 AND flow_id = $2 ORDER BY version DESC LIMIT 20",
        account,
        flow_id,
    )
    if current is None and not rejections:
        return None
    actions = [
        ActionRow(**dict(a))
        for a in await conn.fetch(
            "SELECT step_id, flow_version, mode, recipients FROM alert_actions"
            " WHERE account_id = $1 AND flow_id = $2 ORDER BY step_id",
            account,
            flow_id,
        )
    ]
    return FlowAlerts(
        version=current["version"] if current and not current["deleted"] else None,
        deleted=current is not None and current["deleted"],
        rejections=[Rejection(**dict(r)) for r in rejections],
        actions=actions,
        statuses=await statuses(conn, account, [e for a in actions for e in a.recipients]),
    )


async def _deliveries(
    conn: asyncpg.Connection, alert_ids: list[str]
) -> dict[str, list[DeliveryRow]]:
    out: dict[str, list[DeliveryRow]] = {}
    for d in await conn.fetch(
        "SELECT alert_id, email, status, error, deferred_until, completed_at"
        " FROM alert_deliveries WHERE alert_id = ANY($1::text[]) ORDER BY email",
        alert_ids,
    ):
        row = dict(d)
        out.setdefault(row.pop("alert_id"), []).append(DeliveryRow(**row))
    return out


async def _alerts(
    conn: asyncpg.Connection, where: str, args: Sequence[Any], limit: int
) -> list[AlertRow]:
    rows = await conn.fetch(
        "SELECT alert_id, flow_id, step_id, profile_id, status, reason, requested_at,"
        f" completed_at FROM alerts WHERE {where} ORDER BY requested_at DESC, alert_id"
        f" LIMIT {int(limit)}",
        *args,
    )
    deliveries = await _deliveries(conn, [r["alert_id"] for r in rows])
    return [AlertRow(**dict(r), deliveries=deliveries.get(r["alert_id"], [])) for r in rows]


async def action_alerts(
    conn: asyncpg.Connection, account: str, flow_id: str, step_id: str, limit: int
) -> ActionAlerts | None:
    """An alert action, its alerts counted by status (`waiting` for those held by the
    sending limit) and reason, and its `limit` newest alerts; None when unknown."""
    act = await conn.fetchrow(
        "SELECT step_id, flow_version, mode, recipients FROM alert_actions"
        " WHERE account_id = $1 AND flow_id = $2 AND step_id = $3",
        account,
        flow_id,
        step_id,
    )
    exists = await conn.fetchval(
        "SELECT 1 FROM alerts WHERE account_id = $1 AND flow_id = $2 AND step_id = $3 LIMIT 1",
        account,
        flow_id,
        step_id,
    )
    if act is None and not exists:
        return None
    action = ActionRow(**dict(act)) if act else None
    counts = await conn.fetch(
        "SELECT CASE WHEN a.status = 'sending' AND EXISTS (SELECT 1 FROM alert_deliveries d"
        "   WHERE d.alert_id = a.alert_id AND d.status = 'pending'"
        "   AND d.deferred_until IS NOT NULL) THEN 'waiting' ELSE a.status END AS status,"
        " a.reason, count(*) AS n FROM alerts a"
        " WHERE a.account_id = $1 AND a.flow_id = $2 AND a.step_id = $3"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        account,
        flow_id,
        step_id,
    )
    return ActionAlerts(
        action=action,
        statuses=await statuses(conn, account, list(action.recipients) if action else []),
        counts=[StatusCount(c["status"], c["reason"], c["n"]) for c in counts],
        alerts=await _alerts(
            conn,
            "account_id = $1 AND flow_id = $2 AND step_id = $3",
            [account, flow_id, step_id],
            limit,
        ),
    )


async def activity(
    conn: asyncpg.Connection, account: str, email: str | None, limit: int
) -> list[AlertRow]:
    """The account's newest alerts, or those that named `email` as a recipient."""
    if email:
        return await _alerts(
            conn,
            "account_id = $1 AND alert_id IN (SELECT alert_id FROM alert_deliveries"
            " WHERE email = $2)",
            [account, email],
            limit,
        )
    return await _alerts(conn, "account_id = $1", [account], limit)


async def recipients(conn: asyncpg.Connection, account: str) -> list[RecipientRow]:
    """Every recipient of the account, with the actions (`flow/step`) that list them."""
    rows = await conn.fetch(
        "SELECT r.email, r.status, r.confirmed_at, r.disabled_at,"
        " coalesce(array_agg(a.flow_id || '/' || a.step_id ORDER BY a.flow_id, a.step_id)"
        "   FILTER (WHERE a.step_id IS NOT NULL), '{}') AS actions"
        " FROM recipients r LEFT JOIN alert_actions a"
        "   ON a.account_id = r.account_id AND r.email = ANY(a.recipients)"
        " WHERE r.account_id = $1 GROUP BY r.email, r.status, r.confirmed_at,"
        " r.disabled_at ORDER BY r.email",
        account,
    )
    return [
        RecipientRow(
            email=r["email"],
            status=r["status"],
            confirmed_at=r["confirmed_at"],
            disabled_at=r["disabled_at"],
            actions=list(r["actions"]),
        )
        for r in rows
    ]


async def own_send_limit(conn: asyncpg.Connection, account: str) -> int | None:
    """The account's own sending limit per hour, None when it uses the default."""
    return await conn.fetchval(
        "SELECT alert_send_limit_per_hour FROM account_limits WHERE account_id = $1", account
    )


async def waiting_mails(conn: asyncpg.Connection, account: str, kind: str) -> int:
    return await mail_queue.waiting(conn, account, kind)


async def pages(conn: asyncpg.Connection, account: str) -> PageSettings:
    """The account's page settings (W1; defaults when it set none)."""
    return await page_accounts.load(conn, account)
