"""The alert dispatcher's use cases: register recipients when flows are saved, turn alert
requests into queued mails or skipped outcomes, and publish outcomes when mails finish."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.contracts import AlertOutcome, AlertRequested, FlowDefinition, topics
from shared.contracts.flows import FlowDeleted
from shared.db import mail_queue
from shared.db.mail_queue import QueuedMail
from shared.db.uow import UnitOfWork
from shared.kafka import Received, dead_letter
from shared.settings import Settings
from services.alert_dispatcher.adapters import mails
from services.alert_dispatcher.domain.actions import alert_steps, flow_errors, fold
from services.alert_dispatcher.domain.recipients import Recipient, on_added

DEFINITIONS = "alert_dispatcher.flow-definitions"
NO_CONFIRMED = "Skipped: no confirmed recipients"


async def _recipients(
    conn: asyncpg.Connection, account_id: str, emails: Sequence[str]
) -> dict[str, Recipient]:
    rows = await conn.fetch(
        "SELECT email, status, generation FROM recipients WHERE account_id = $1"
        " AND email = ANY($2::text[])",
        account_id,
        list(emails),
    )
    return {r["email"]: Recipient(r["email"], r["status"], r["generation"]) for r in rows}


async def save_definitions(
    uow: UnitOfWork, items: list[Received[Any]], settings: Settings
) -> None:
    """A1/A7 on save, then A3: recipients added to an action are asked to confirm."""
    conn = uow.conn
    for item in items:
        msg = item.message
        if isinstance(msg, FlowDeleted):
            await conn.execute(
                "UPDATE flow_versions SET deleted = true WHERE account_id = $1 AND flow_id = $2",
                msg.account_id, msg.flow_id,
            )
            await conn.execute(
                "DELETE FROM alert_actions WHERE account_id = $1 AND flow_id = $2",
                msg.account_id, msg.flow_id,
            )
            continue
        flow: FlowDefinition = msg
        errors = flow_errors(flow)
        if errors:
            await conn.execute(
                "INSERT INTO flow_rejections (account_id, flow_id, version, errors)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                flow.account_id, flow.flow_id, flow.version, errors,
            )
            dead_letter(uow, DEFINITIONS, item.record, "invalid flow: " + "; ".join(errors))
            continue
        newer = await conn.fetchrow(
            "INSERT INTO flow_versions (account_id, flow_id, version) VALUES ($1, $2, $3)"
            " ON CONFLICT (account_id, flow_id) DO UPDATE SET version = EXCLUDED.version,"
            " deleted = false WHERE flow_versions.version < EXCLUDED.version RETURNING 1",
            flow.account_id, flow.flow_id, flow.version,
        )
        if newer is None:
            continue  # an older or repeated version changes nothing (F1)
        await _apply_actions(uow, flow, settings)


async def _apply_actions(uow: UnitOfWork, flow: FlowDefinition, settings: Settings) -> None:
    conn = uow.conn
    previous = {
        r["step_id"]: set(r["recipients"])
        for r in await conn.fetch(
            "SELECT step_id, recipients FROM alert_actions WHERE account_id = $1 AND flow_id = $2",
            flow.account_id, flow.flow_id,
        )
    }
    steps = alert_steps(flow)
    await conn.execute(
        "DELETE FROM alert_actions WHERE account_id = $1 AND flow_id = $2"
        " AND NOT (step_id = ANY($3::text[]))",
        flow.account_id, flow.flow_id, [s.id for s in steps],
    )
    for step in steps:
        folded = list(dict.fromkeys(fold(r) for r in step.recipients))
        await conn.execute(
            "INSERT INTO alert_actions (account_id, flow_id, step_id, flow_version, mode, recipients)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, flow_id, step_id)"
            " DO UPDATE SET flow_version = EXCLUDED.flow_version, mode = EXCLUDED.mode,"
            " recipients = EXCLUDED.recipients",
            flow.account_id, flow.flow_id, step.id, flow.version, step.mode, folded,
        )
        added = [e for e in folded if e not in previous.get(step.id, set())]
        if not added:
            continue
        current = await _recipients(conn, flow.account_id, added)
        for email in added:
            change = on_added(current.get(email), email)
            r = change.recipient
            await conn.execute(
                "INSERT INTO recipients (account_id, email, status, generation) VALUES ($1,$2,$3,$4)"
                " ON CONFLICT (account_id, email) DO UPDATE SET status = EXCLUDED.status,"
                " generation = EXCLUDED.generation, updated_at = now()",
                flow.account_id, email, r.status, r.generation,
            )
            if change.send_confirmation:
                msg = mails.confirmation(settings, flow.account_id, email, r.generation, step.from_email)
                await mail_queue.enqueue(
                    conn,
                    dedupe_key=f"confirm:{flow.account_id}:{email}:{r.generation}",
                    kind="recipient-confirmation",
                    account_id=flow.account_id,
                    message=msg,
                    mail_from=step.from_email,
                    rcpt_to=email,
                )


def _outcome(request: AlertRequested, kind: str, recipients: list[str], failed: list[str],
             reason: str | None) -> AlertOutcome:
    return AlertOutcome(
        type=kind,  # type: ignore[arg-type]
        alert_id=request.alert_id,
        account_id=request.account_id,
        flow_id=request.flow_id,
        step_id=request.step_id,
        profile_id=request.profile_id,
        recipients=recipients,
        failed_recipients=failed,
        reason=reason,
    )


async def dispatch(uow: UnitOfWork, items: list[Received[AlertRequested]], settings: Settings) -> None:
    """A5: queue one mail per confirmed recipient, or record `skipped` when none is left."""
    conn = uow.conn
    requests = [i.message for i in items]
    await conn.executemany(
        "INSERT INTO alerts (alert_id, account_id, flow_id, step_id, profile_id, requested_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        [(r.alert_id, r.account_id, r.flow_id, r.step_id, r.profile_id, r.requested_at)
         for r in requests],
    )
    by_account: dict[str, set[str]] = {}
    for r in requests:
        by_account.setdefault(r.account_id, set()).update(fold(e) for e in r.action.recipients)
    known = {a: await _recipients(conn, a, sorted(emails)) for a, emails in by_account.items()}
    skipped: list[tuple[str, str]] = []
    deliveries: list[tuple[str, str, int]] = []
    for request in requests:
        statuses = known[request.account_id]
        confirmed = [
            statuses[e]
            for e in dict.fromkeys(fold(x) for x in request.action.recipients)
            if e in statuses and statuses[e].status == "confirmed"
        ]
        if not confirmed:
            skipped.append((request.alert_id, NO_CONFIRMED))
            uow.publish(topics.ALERT_OUTCOMES, request.profile_id,
                        _outcome(request, "skipped", [], [], NO_CONFIRMED))
            continue
        for rcpt in confirmed:
            mail_id = await mail_queue.enqueue(
                conn,
                dedupe_key=f"alert:{request.alert_id}:{rcpt.email}",
                kind="alert",
                account_id=request.account_id,
                message=mails.alert(settings, request, rcpt.email, rcpt.generation),
                mail_from=request.action.from_email,
                rcpt_to=rcpt.email,
            )
            if mail_id is not None:
                deliveries.append((request.alert_id, rcpt.email, mail_id))
    if skipped:
        await conn.executemany(
            "UPDATE alerts SET status = 'skipped', reason = $2, completed_at = now()"
            " WHERE alert_id = $1",
            skipped,
        )
    if deliveries:
        await conn.executemany(
            "INSERT INTO alert_deliveries (alert_id, email, mail_id) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            deliveries,
        )


async def on_mails_final(uow: UnitOfWork, finished: Sequence[QueuedMail]) -> None:
    """In the transaction that marks mails sent/failed: update deliveries, and publish the
    outcome of every alert whose mails are all done (A5, A6)."""
    conn = uow.conn
    alert_mails = [m for m in finished if m.kind == "alert"]
    if not alert_mails:
        return
    rows = await conn.fetch(
        "UPDATE alert_deliveries d SET status = m.status, error = m.error"
        " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS m(id, status, error)"
        " WHERE d.mail_id = m.id RETURNING d.alert_id",
        [m.id for m in alert_mails],
        [m.status for m in alert_mails],
        [m.error for m in alert_mails],
    )
    alert_ids = list({r["alert_id"] for r in rows})
    done = await conn.fetch(
        "UPDATE alerts a SET status = CASE WHEN s.sent > 0 THEN 'sent' ELSE 'failed' END,"
        " completed_at = now()"
        " FROM (SELECT alert_id, count(*) FILTER (WHERE status = 'sent') AS sent,"
        "        count(*) FILTER (WHERE status = 'pending') AS pending,"
        "        array_agg(email ORDER BY email) FILTER (WHERE status = 'sent') AS ok,"
        "        array_agg(email ORDER BY email) FILTER (WHERE status = 'failed') AS bad"
        "       FROM alert_deliveries WHERE alert_id = ANY($1::text[]) GROUP BY alert_id) s"
        " WHERE a.alert_id = s.alert_id AND s.pending = 0 AND a.status = 'sending'"
        " RETURNING a.alert_id, a.account_id, a.flow_id, a.step_id, a.profile_id, a.status,"
        " s.ok, s.bad",
        alert_ids,
    )
    if not done:
        return
    for r in done:
        uow.publish(
            topics.ALERT_OUTCOMES,
            r["profile_id"],
            AlertOutcome(
                type=r["status"],
                alert_id=r["alert_id"],
                account_id=r["account_id"],
                flow_id=r["flow_id"],
                step_id=r["step_id"],
                profile_id=r["profile_id"],
                recipients=r["ok"] or [],
                failed_recipients=r["bad"] or [],
                reason=None if r["status"] == "sent" else "Failed: every recipient refused",
            ),
        )
