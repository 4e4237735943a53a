"""The alert dispatcher's use cases: register recipients when flows are saved, turn alert
requests into queued mails or skipped outcomes, hold mails back at send time (recipient
no longer confirmed, sending limit), and publish outcomes when mails finish."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg

from services.alert_dispatcher.adapters import mails
from services.alert_dispatcher.adapters import repository as repo
from services.alert_dispatcher.domain.limits import admissible, window_at
from services.alert_dispatcher.domain.outcomes import NO_CONFIRMED
from services.alert_dispatcher.domain.recipients import Clicked, Recipient, added_to_actions
from shared.contracts import AlertOutcome, AlertRequested, FlowDefinition, topics
from shared.contracts.flows import FlowDeleted
from shared.db import mail_queue
from shared.db.mail_queue import QueuedMail
from shared.db.uow import UnitOfWork
from shared.domain.flow_rules import alert_recipients, alert_steps, flow_problems
from shared.kafka import Received, dead_letter
from shared.logging import get_logger
from shared.pages import accounts as page_accounts
from shared.pages.accounts import PageSettings
from shared.privacy import hash_secret, subject_hashes
from shared.settings import Settings
from shared.templates import run_with_budget

log = get_logger(__name__)

DEFINITIONS = "alert_dispatcher.flow-definitions"
ALERT = "alert"
CONFIRMATION = "recipient-confirmation"
REMOVED = "recipient removed from the alert"


async def save_definitions(uow: UnitOfWork, items: list[Received[Any]], settings: Settings) -> None:
    """A1/A7 on save (a rejected version is dead-lettered with the reason, recorded for
    the API, and the previous version stays), then A3 for the recipients it adds."""
    conn = uow.conn
    for item in items:
        msg = item.message
        if isinstance(msg, FlowDeleted):
            await conn.execute(
                "UPDATE flow_versions SET deleted = true WHERE account_id = $1 AND flow_id = $2",
                msg.account_id,
                msg.flow_id,
            )
            await conn.execute(
                "DELETE FROM alert_actions WHERE account_id = $1 AND flow_id = $2",
                msg.account_id,
                msg.flow_id,
            )
            continue
        flow: FlowDefinition = msg
        errors = flow_problems(flow)
        if errors:
            await conn.execute(
                "INSERT INTO flow_rejections (account_id, flow_id, version, errors)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                flow.account_id,
                flow.flow_id,
                flow.version,
                errors,
            )
            dead_letter(uow, DEFINITIONS, item.record, "invalid flow: " + "; ".join(errors))
            log.info("flow version rejected", flow_id=flow.flow_id, version=flow.version)
            continue
        newer = await conn.fetchrow(
            "INSERT INTO flow_versions (account_id, flow_id, version) VALUES ($1, $2, $3)"
            " ON CONFLICT (account_id, flow_id) DO UPDATE SET version = EXCLUDED.version,"
            " deleted = false WHERE flow_versions.version < EXCLUDED.version RETURNING 1",
            flow.account_id,
            flow.flow_id,
            flow.version,
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
            flow.account_id,
            flow.flow_id,
        )
    }
    steps = alert_steps(flow)
    await conn.execute(
        "DELETE FROM alert_actions WHERE account_id = $1 AND flow_id = $2"
        " AND NOT (step_id = ANY($3::text[]))",
        flow.account_id,
        flow.flow_id,
        [s.id for s in steps],
    )
    folded = [(s, alert_recipients(s.recipients)) for s in steps]
    await conn.executemany(
        "INSERT INTO alert_actions (account_id, flow_id, step_id, flow_version, mode, recipients)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, flow_id, step_id)"
        " DO UPDATE SET flow_version = EXCLUDED.flow_version, mode = EXCLUDED.mode,"
        " recipients = EXCLUDED.recipients",
        [(flow.account_id, flow.flow_id, s.id, flow.version, s.mode, r) for s, r in folded],
    )
    everyone = sorted({e for _, r in folded for e in r})
    current = await repo.recipients(conn, flow.account_id, everyone, lock=True)
    sender = {e: s.from_email for s, r in reversed(folded) for e in r}
    pages = await page_accounts.load(conn, flow.account_id)
    confirmations: list[mail_queue.OutgoingMail] = []
    for change in added_to_actions(current, previous, [(s.id, r) for s, r in folded]):
        r = change.recipient
        await repo.save_recipient(conn, flow.account_id, r)
        if change.send_confirmation:
            await repo.mark_asked(conn, flow.account_id, r.email, sender[r.email])
            confirmations.append(
                _confirmation(settings, flow.account_id, r, sender[r.email], pages, "")
            )
    await mail_queue.enqueue_many(conn, confirmations)


def _confirmation(
    settings: Settings,
    account_id: str,
    r: Recipient,
    mail_from: str,
    pages: page_accounts.PageSettings,
    renewal: str,
) -> mail_queue.OutgoingMail:
    return mail_queue.OutgoingMail(
        dedupe_key=f"confirm:{account_id}:{r.email}:{r.generation}{renewal}",
        kind=CONFIRMATION,
        account_id=account_id,
        message=mails.confirmation(
            settings, account_id, r.email, r.generation, mail_from, pages, renewal
        ),
        mail_from=mail_from,
        rcpt_to=r.email,
    )


async def renew_confirmation(
    conn: asyncpg.Connection, settings: Settings, account_id: str, email: str, now: datetime
) -> bool:
    """C12: the page of an expired confirm link sends a new confirmation mail for the
    recipient's current generation, from the sender that asked last; at most one a day.
    False when the recipient is no longer waiting for a confirmation."""
    current = (await repo.recipients(conn, account_id, [email], lock=True)).get(email)
    if current is None or current.status != "unconfirmed":
        return False
    asked = await repo.asked(conn, account_id, email)
    mail_from = (asked[1] if asked else None) or mails.DEFAULT_FROM
    await repo.mark_asked(conn, account_id, email, mail_from)
    pages = await page_accounts.load(conn, account_id)
    renewal = f":renewed:{now.date().isoformat()}"
    await mail_queue.enqueue_many(
        conn, [_confirmation(settings, account_id, current, mail_from, pages, renewal)]
    )
    return True


async def dispatch(
    uow: UnitOfWork, items: list[Received[AlertRequested]], settings: Settings
) -> None:
    """A5: queue one mail per confirmed recipient (checked again when the mail is sent),
    or record `skipped` at once when none is confirmed."""
    conn = uow.conn
    requests = [i.message for i in items]
    secret = hash_secret(settings)
    await conn.executemany(
        "INSERT INTO alerts (alert_id, account_id, flow_id, flow_version, step_id, profile_id,"
        " requested_at, subject_hashes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT DO NOTHING",
        [
            (
                r.alert_id,
                r.account_id,
                r.flow_id,
                r.flow_version,
                r.step_id,
                r.profile_id,
                r.requested_at,
                subject_hashes(secret, r.profile.email, r.profile.phone_number),
            )
            for r in requests
        ],
    )
    by_account: dict[str, set[str]] = {}
    for r in requests:
        by_account.setdefault(r.account_id, set()).update(alert_recipients(r.action.recipients))
    known = {a: await repo.recipients(conn, a, sorted(e)) for a, e in by_account.items()}
    current = await repo.action_recipients(
        conn, {(r.account_id, r.flow_id, r.step_id) for r in requests}
    )
    pages = await page_accounts.load_many(conn, list(by_account))
    deliveries: list[tuple[str, str, int | None, str, str | None]] = []
    outcomes: list[AlertOutcome] = []
    outgoing: list[tuple[str, str, mail_queue.OutgoingMail]] = []
    for request in requests:
        statuses = known[request.account_id]
        targets = alert_recipients(request.action.recipients)
        now_on = current.get((request.account_id, request.flow_id, request.step_id))
        if now_on is not None:
            # A5: an alert held for review or waiting on a delay was requested with the
            # recipients of its time; whoever was removed from the action since is not
            # mailed.
            for email in [e for e in targets if e not in now_on]:
                deliveries.append((request.alert_id, email, None, "skipped", REMOVED))
            targets = [e for e in targets if e in now_on]
        confirmed = [
            statuses[e] for e in targets if e in statuses and statuses[e].status == "confirmed"
        ]
        for email in targets:
            if email not in statuses or statuses[email].status != "confirmed":
                status = statuses[email].status if email in statuses else "not registered"
                deliveries.append((request.alert_id, email, None, "skipped", f"recipient {status}"))
        if not confirmed:
            outcomes.append(_skipped(request))
            continue
        try:
            # Off the event loop and in a time and size budget (A7): a template bomb
            # fails its own alert, with the reason, and nobody else's.
            parts = await run_with_budget(partial(mails.rendered, request))
            language = (pages.get(request.account_id) or PageSettings()).language
            built = [
                (
                    rcpt,
                    mails.alert(settings, request, rcpt.email, rcpt.generation, language, parts),
                )
                for rcpt in confirmed
            ]
        except Exception as exc:
            # Whatever a tenant's template or values do, the alert gets an outcome.
            reason = f"Failed: the alert could not be built ({type(exc).__name__}: {exc})"
            log.warning("alert not built", alert_id=request.alert_id, reason=reason)
            outcomes.append(_skipped(request, "failed", reason[:1000]))
            continue
        for rcpt, message in built:
            outgoing.append(
                (
                    request.alert_id,
                    rcpt.email,
                    mail_queue.OutgoingMail(
                        dedupe_key=f"alert:{request.alert_id}:{rcpt.email}",
                        kind=ALERT,
                        account_id=request.account_id,
                        message=message,
                        mail_from=request.action.from_email,
                        rcpt_to=rcpt.email,
                    ),
                )
            )
    queued = await mail_queue.enqueue_many(conn, [m for _, _, m in outgoing])
    deliveries += [
        (alert_id, email, queued[m.dedupe_key], "pending", None)
        for alert_id, email, m in outgoing
        if m.dedupe_key in queued
    ]
    if deliveries:
        await conn.executemany(
            "INSERT INTO alert_deliveries (alert_id, email, mail_id, status, error, completed_at)"
            " VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'pending' THEN NULL ELSE now() END)"
            " ON CONFLICT DO NOTHING",
            deliveries,
        )
    if outcomes:
        await conn.executemany(
            "UPDATE alerts SET status = $3, reason = $2, completed_at = now()"
            " WHERE alert_id = $1 AND status = 'sending'",
            [(o.alert_id, o.reason, o.type) for o in outcomes],
        )
        for o in outcomes:
            uow.publish(topics.ALERT_OUTCOMES, o.profile_id, o)


def _skipped(
    request: AlertRequested, kind: str = "skipped", reason: str = NO_CONFIRMED
) -> AlertOutcome:
    return AlertOutcome(
        type=kind,  # type: ignore[arg-type]
        alert_id=request.alert_id,
        account_id=request.account_id,
        flow_id=request.flow_id,
        step_id=request.step_id,
        profile_id=request.profile_id,
        reason=reason,
    )


async def on_mails_final(uow: UnitOfWork, finished: Sequence[QueuedMail]) -> None:
    """In the transaction that marks mails sent/failed: record each recipient's delivery
    (A9: a 5xx is kept per recipient) and publish the outcome of every alert whose mails
    are all done, exactly once (A5, A6)."""
    alert_mails = [m for m in finished if m.kind == ALERT]
    if not alert_mails:
        return
    rows = await uow.conn.fetch(
        "UPDATE alert_deliveries d SET status = m.status, error = m.error, completed_at = now()"
        " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS m(id, status, error)"
        " WHERE d.mail_id = m.id AND d.status = 'pending' RETURNING d.alert_id",
        [m.id for m in alert_mails],
        [m.status for m in alert_mails],
        [m.error for m in alert_mails],
    )
    for o in await repo.finish_alerts(uow.conn, [r["alert_id"] for r in rows]):
        uow.publish(topics.ALERT_OUTCOMES, o.profile_id, o)


def mail_admission(settings: Settings) -> Callable[[asyncpg.Connection, Sequence[QueuedMail]], Any]:
    """The mail worker's `admit` hook, run in the transaction that claims due mails."""

    async def admit(conn: asyncpg.Connection, claimed: Sequence[QueuedMail]) -> set[int]:
        # A8: confirmation mails count against the sending limit as alerts do, or a
        # flow saved with many new recipients could mail without bound.
        others = [m for m in claimed if m.kind != ALERT]
        alert_mails = [m for m in claimed if m.kind == ALERT]
        if alert_mails:
            alert_mails = await _drop_unconfirmed(conn, alert_mails)
        return await _within_limit(conn, [*others, *alert_mails], settings)

    return admit


async def _drop_unconfirmed(
    conn: asyncpg.Connection, claimed: Sequence[QueuedMail]
) -> list[QueuedMail]:
    """A5 at send time: a recipient who unsubscribed (or was re-added and has not confirmed
    again), or was removed from the alert's action, since the alert was queued is not
    mailed; the mail is cancelled and the delivery recorded as skipped."""
    rows = await conn.fetch(
        "SELECT m.id, CASE WHEN m.email = ANY(coalesce(a.recipients, ARRAY[m.email]))"
        "   THEN coalesce(r.status, 'not registered') ELSE 'removed from the alert' END"
        "   AS status"
        " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS m(id, account_id, email)"
        " LEFT JOIN recipients r ON r.account_id = m.account_id AND r.email = m.email"
        " LEFT JOIN alert_deliveries d ON d.mail_id = m.id"
        " LEFT JOIN alerts al ON al.alert_id = d.alert_id"
        " LEFT JOIN alert_actions a ON a.account_id = al.account_id"
        "   AND a.flow_id = al.flow_id AND a.step_id = al.step_id",
        [m.id for m in claimed],
        [m.account_id for m in claimed],
        [m.rcpt_to.lower() for m in claimed],
    )
    refused = {r["id"]: r["status"] for r in rows if r["status"] != "confirmed"}
    if not refused:
        return list(claimed)
    ids = list(refused)
    await conn.execute(
        "UPDATE mail_queue SET status = 'cancelled', last_error = 'recipient not confirmed'"
        " WHERE id = ANY($1::bigint[])",
        ids,
    )
    done = await conn.fetch(
        "UPDATE alert_deliveries d SET status = 'skipped', completed_at = now(),"
        " error = 'recipient ' || m.status || ' at send time'"
        " FROM unnest($1::bigint[], $2::text[]) AS m(id, status)"
        " WHERE d.mail_id = m.id AND d.status = 'pending' RETURNING d.alert_id",
        ids,
        [refused[i] for i in ids],
    )
    outcomes = await repo.finish_alerts(conn, [r["alert_id"] for r in done])
    await repo.publish_now(conn, repo.outcome_messages(outcomes))
    return [m for m in claimed if m.id not in refused]


async def _within_limit(
    conn: asyncpg.Connection, claimed: Sequence[QueuedMail], settings: Settings
) -> set[int]:
    """A8: each mail counts once against its account's limit in the current window (its
    first attempt; a retry was counted already). Mails over the limit wait for the next
    window without using up an attempt."""
    admitted = {m.id for m in claimed if m.attempts > 0}
    first: dict[str, list[QueuedMail]] = {}
    for m in claimed:
        if m.attempts == 0:
            first.setdefault(m.account_id, []).append(m)
    if not first:
        return admitted
    window = window_at(await conn.fetchval("SELECT now()"), settings.alert_send_window_s)
    deferred: list[int] = []
    for account_id in sorted(first):
        wanted = sorted(first[account_id], key=lambda m: m.id)
        limit = await repo.send_limit(conn, account_id, settings.alert_send_limit_per_hour)
        used = await repo.lock_window(conn, account_id, window.start)
        n = admissible(used, limit, len(wanted))
        admitted |= {m.id for m in wanted[:n]}
        deferred += [m.id for m in wanted[n:]]
        if n:
            await conn.execute(
                "UPDATE send_windows SET sent = sent + $3 WHERE account_id = $1"
                " AND window_start = $2",
                account_id,
                window.start,
                n,
            )
    if deferred:
        await conn.execute(
            "UPDATE mail_queue SET next_attempt_at = $2 WHERE id = ANY($1::bigint[])",
            deferred,
            window.end,
        )
        await conn.execute(
            "UPDATE alert_deliveries SET deferred_until = $2 WHERE mail_id = ANY($1::bigint[])",
            deferred,
            window.end,
        )
    return admitted


async def click(
    conn: asyncpg.Connection,
    account_id: str,
    email: str,
    generation: int,
    decide: Callable[[Recipient | None, int], Clicked],
) -> Clicked:
    """A4: apply a confirm or unsubscribe click (idempotent). Only the recipient's alert
    opt-in changes: profile consent and suppression are another service's and untouched."""
    current = (await repo.recipients(conn, account_id, [email], lock=True)).get(email)
    result = decide(current, generation)
    if result.recipient is not None:
        await repo.save_recipient(conn, account_id, result.recipient)
    return result
