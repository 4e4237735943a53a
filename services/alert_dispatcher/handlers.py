"""The alert dispatcher's use cases, each over `ports.AlertWork` (its only port): register
recipients when flows are saved, turn alert requests into queued mails or skipped
outcomes, confirm and unsubscribe recipients and send them confirmation mails, and, at
send time, admit each queued mail or hold it and complete an alert once its mails are
done. The consumers' use cases have the edge's shape, `(batch, work)`; those of the mail
worker (`delivery.AlertDelivery`) and of the HTTP side take the work first."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from services.alert_dispatcher.domain.limits import admissible
from services.alert_dispatcher.domain.outcomes import NO_CONFIRMED, decide
from services.alert_dispatcher.domain.recipients import (
    Clicked,
    Recipient,
    added_to_actions,
    alert_addresses,
)
from services.alert_dispatcher.domain.templates import rendered
from services.alert_dispatcher.ports import (
    ActionKey,
    AlertAction,
    AlertWork,
    Delivery,
    NewAlert,
    SendingAlert,
)
from shared.contracts import AlertOutcome, AlertRequested, FlowDefinition, topics
from shared.contracts.flows import FlowDeleted
from shared.domain.flow_rules import alert_steps, flow_problems
from shared.domain.identity import derived_id
from shared.logging import get_logger
from shared.pages.accounts import PageSettings
from shared.ports import OutgoingMail, QueuedMail
from shared.received import Received
from shared.templates import run_each_with_budget

log = get_logger(__name__)

DEFINITIONS = "alert_dispatcher.flow-definitions"
REMOVED = "recipient removed from the alert"
# The kinds of the dispatcher's mails in the mail queue.
ALERT = "alert"
CONFIRMATION = "recipient-confirmation"
NOT_CONFIRMED = "recipient not confirmed"


# --- flows saved (A1, A3, A7) ------------------------------------------------------------


async def save_definitions(
    batch: list[Received[FlowDefinition | FlowDeleted]], work: AlertWork
) -> None:
    """A1/A7 on save (a rejected version is dead-lettered with the reason, recorded for
    the API, and the previous version stays), then A3 for the recipients it adds."""
    for item in batch:
        msg = item.message
        if isinstance(msg, FlowDeleted):
            await work.flows.delete(msg.account_id, msg.flow_id)
            continue
        flow: FlowDefinition = msg
        errors = flow_problems(flow)
        if errors:
            await work.flows.reject_version(flow.account_id, flow.flow_id, flow.version, errors)
            work.dead_letter(DEFINITIONS, item.record, "invalid flow: " + "; ".join(errors))
            log.info("flow version rejected", flow_id=flow.flow_id, version=flow.version)
            continue
        if not await work.flows.take_version(flow.account_id, flow.flow_id, flow.version):
            continue  # an older or repeated version changes nothing (F1)
        await _apply_actions(work, flow)


async def _apply_actions(work: AlertWork, flow: FlowDefinition) -> None:
    previous = await work.flows.actions(flow.account_id, flow.flow_id)
    steps = alert_steps(flow)
    addressed = [alert_addresses(s.recipients) for s in steps]
    actions = [AlertAction(s.id, s.mode, list(a)) for s, a in zip(steps, addressed, strict=True)]
    await work.flows.replace_actions(flow.account_id, flow.flow_id, flow.version, actions)
    everyone = sorted({e for a in actions for e in a.recipients})
    current = await work.recipients.find(flow.account_id, everyone, lock=True)
    # The first step that lists a recipient asks them to confirm: its sender, its spelling.
    sender: dict[str, str] = {}
    written: dict[str, str] = {}
    for step, action, spelled in reversed(list(zip(steps, actions, addressed, strict=True))):
        sender.update(dict.fromkeys(action.recipients, step.from_email))
        written.update(spelled)
    pages = await _pages(work, flow.account_id)
    confirmations: list[OutgoingMail] = []
    steps_listing = [(a.step_id, a.recipients) for a in actions]
    for change in added_to_actions(current, previous, steps_listing, written):
        r = change.recipient
        await work.recipients.save(flow.account_id, r)
        if change.send_confirmation:
            await work.recipients.mark_asked(flow.account_id, r.email, sender[r.email])
            confirmations.append(_confirmation(work, flow.account_id, r, sender[r.email], pages))
    await work.queue_mail(confirmations)


async def _pages(work: AlertWork, account_id: str) -> PageSettings:
    return (await work.accounts.pages([account_id])).get(account_id, PageSettings())


def _confirmation(
    work: AlertWork,
    account_id: str,
    r: Recipient,
    mail_from: str,
    pages: PageSettings | None,
    renewal: str = "",
    dedupe: str | None = None,
) -> OutgoingMail:
    return OutgoingMail(
        dedupe_key=dedupe
        or derived_id(
            "confirm", account_id, r.email, str(r.generation), *([renewal] if renewal else [])
        ),
        kind=CONFIRMATION,
        account_id=account_id,
        message=work.compose.confirmation(account_id, r, mail_from, pages, renewal),
        mail_from=mail_from,
        rcpt_to=r.mail_to,
    )


# --- confirmation mails asked for by people (A4, C12) ------------------------------------


async def renew_confirmation(work: AlertWork, account_id: str, email: str, now: datetime) -> bool:
    """C12: the page of an expired confirm link sends a new confirmation mail for the
    recipient's current generation, from the sender that asked last; at most one a day.
    False when the recipient is no longer waiting for a confirmation."""
    current = (await work.recipients.find(account_id, [email], lock=True)).get(email)
    if current is None or current.status != "unconfirmed":
        return False
    asked = await work.recipients.asked(account_id, email)
    mail_from = (asked.sender if asked else None) or work.compose.default_from
    await work.recipients.mark_asked(account_id, email, mail_from)
    pages = await _pages(work, account_id)
    renewal = derived_id("renewed", now.date().isoformat())
    await work.queue_mail([_confirmation(work, account_id, current, mail_from, pages, renewal)])
    return True


@dataclass(frozen=True)
class Resent:
    """What re-sending a confirmation did: the recipient as found (None: unknown) and
    the queued mail (None: not unconfirmed, nothing sent)."""

    recipient: Recipient | None
    mail_id: int | None = None


async def resend_confirmation(work: AlertWork, account_id: str, email: str, nonce: str) -> Resent:
    """An operator re-sends an unconfirmed recipient's confirmation mail (A2, A4): the
    same link as the last one (same generation), so an earlier mail keeps working too,
    from the sender of the last confirmation mail."""
    current = (await work.recipients.find(account_id, [email], lock=True)).get(email)
    if current is None or current.status != "unconfirmed":
        return Resent(current)
    asked = await work.recipients.asked(account_id, email)
    sender = (asked.sender if asked else None) or await work.mails.last_sender(
        account_id, current.mail_to, CONFIRMATION
    )
    sender = sender or work.compose.operator_from
    dedupe = derived_id("confirm", account_id, email, str(current.generation), "resend", nonce)
    mail = _confirmation(work, account_id, current, sender, None, "", dedupe)
    queued = await work.queue_mail([mail])
    return Resent(current, next(iter(queued.values())))


async def click(
    work: AlertWork,
    account_id: str,
    email: str,
    generation: int,
    decide: Callable[[Recipient | None, int], Clicked],
) -> Clicked:
    """A4: apply a confirm or unsubscribe click (idempotent). Only the recipient's alert
    opt-in changes: profile consent and suppression are another service's and untouched."""
    current = (await work.recipients.find(account_id, [email], lock=True)).get(email)
    result = decide(current, generation)
    if result.recipient is not None:
        await work.recipients.save(account_id, result.recipient)
    return result


# --- alert requests (A5, A7) -------------------------------------------------------------


@dataclass
class _Made:
    """What a batch of alert requests comes to, written at the end in a few statements."""

    deliveries: list[Delivery] = field(default_factory=list)
    outcomes: list[AlertOutcome] = field(default_factory=list)
    outgoing: list[tuple[str, str, OutgoingMail]] = field(default_factory=list)


async def dispatch(batch: list[Received[AlertRequested]], work: AlertWork) -> None:
    """A5: queue one mail per confirmed recipient (checked again when the mail is sent),
    or record `skipped` at once when none is confirmed."""
    requests = [i.message for i in batch]
    await work.alerts.add(_new_alerts(batch, work))
    # The requests of one action list the same recipients: each list is checked once.
    checked: dict[tuple[str, ...], dict[str, str]] = {}
    written = [
        checked.get(key) or checked.setdefault(key, alert_addresses(key))
        for key in (tuple(r.action.recipients) for r in requests)
    ]
    by_account: dict[str, set[str]] = {}
    for r, addresses in zip(requests, written, strict=True):
        by_account.setdefault(r.account_id, set()).update(addresses)
    known = {a: await work.recipients.find(a, sorted(e)) for a, e in by_account.items()}
    current = await work.flows.action_recipients({_key(r) for r in requests})
    pages = await work.accounts.pages(list(by_account))
    made = _Made()
    confirmed = [
        _confirmed(made, r, addresses, known[r.account_id], current.get(_key(r)))
        for r, addresses in zip(requests, written, strict=True)
    ]
    # Off the event loop and in a time and size budget (A7), the batch's renders handed
    # to the thread together: a template bomb fails its own alert, and nobody else's.
    renders = iter(
        await run_each_with_budget(
            [partial(rendered, r) for r, to in zip(requests, confirmed, strict=True) if to]
        )
    )
    for request, to in zip(requests, confirmed, strict=True):
        language = (pages.get(request.account_id) or PageSettings()).language
        _build(work, made, request, to, language, next(renders) if to else None)
    queued = await work.queue_mail([m for _, _, m in made.outgoing])
    made.deliveries += [
        Delivery(alert_id, email, queued[m.dedupe_key], "pending")
        for alert_id, email, m in made.outgoing
        if m.dedupe_key in queued
    ]
    await work.alerts.add_deliveries(made.deliveries)
    traces = {i.message.alert_id: i.trace.headers() for i in reversed(batch)}
    await record_outcome(work, made.outcomes, traces)


def _key(request: AlertRequested) -> ActionKey:
    return ActionKey(request.account_id, request.flow_id, request.step_id)


def _new_alerts(items: list[Received[AlertRequested]], work: AlertWork) -> list[NewAlert]:
    """The alerts as stored, each with its request's trace (X4)."""
    return [
        NewAlert(
            alert_id=r.alert_id,
            account_id=r.account_id,
            flow_id=r.flow_id,
            flow_version=r.flow_version,
            step_id=r.step_id,
            profile_id=r.profile_id,
            requested_at=r.requested_at,
            subject_hashes=work.subject_hashes(r.profile.email, r.profile.phone_number),
            trace=i.trace.headers(),
        )
        for i in items
        for r in (i.message,)
    ]


def _confirmed(
    made: _Made,
    request: AlertRequested,
    written: dict[str, str],
    statuses: dict[str, Recipient],
    now_on: set[str] | None,
) -> list[Recipient]:
    """The request's recipients who get the alert; the others are recorded as skipped
    with the reason. `written`: the request's recipients, key to spelling (A1, I1)."""
    targets = list(written)
    if now_on is not None:
        # A5: an alert held for review or waiting on a delay was requested with the
        # recipients of its time; whoever was removed from the action since is not mailed.
        for email in [e for e in targets if e not in now_on]:
            made.deliveries.append(Delivery(request.alert_id, email, None, "skipped", REMOVED))
        targets = [e for e in targets if e in now_on]
    # Mailed at the spelling this request's action wrote (I1: the opt-in is the key's).
    confirmed = [
        replace(statuses[e], address=written[e])
        for e in targets
        if e in statuses and statuses[e].status == "confirmed"
    ]
    for email in targets:
        if email not in statuses or statuses[email].status != "confirmed":
            status = statuses[email].status if email in statuses else "not registered"
            made.deliveries.append(
                Delivery(request.alert_id, email, None, "skipped", f"recipient {status}")
            )
    return confirmed


def _build(
    work: AlertWork,
    made: _Made,
    request: AlertRequested,
    confirmed: list[Recipient],
    language: str | None,
    parts: tuple[str, str, str] | Exception | None,
) -> None:
    """One mail per confirmed recipient from the alert's rendered `parts`, or the alert's
    outcome when there is none to send or it could not be rendered or built."""
    if not confirmed:
        made.outcomes.append(_skipped(request))
        return
    try:
        if isinstance(parts, Exception):
            raise parts
        assert parts is not None
        copies = work.compose.alerts(request, confirmed, language, parts)
        built = list(zip(confirmed, copies, strict=True))
    except Exception as exc:
        # Whatever a tenant's template or values do, the alert gets an outcome.
        reason = f"Failed: the alert could not be built ({type(exc).__name__}: {exc})"
        log.warning("alert not built", alert_id=request.alert_id, reason=reason)
        made.outcomes.append(_skipped(request, "failed", reason[:1000]))
        return
    for rcpt, message in built:
        mail = OutgoingMail(
            dedupe_key=derived_id("alert", request.alert_id, rcpt.email),
            kind=ALERT,
            account_id=request.account_id,
            message=message,
            mail_from=request.action.from_email,
            rcpt_to=rcpt.mail_to,
        )
        made.outgoing.append((request.alert_id, rcpt.email, mail))


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


# --- at send time and after (A5, A6, A8, A9): the mail worker's steps ----------------


async def record_outcome(
    work: AlertWork,
    outcomes: Sequence[AlertOutcome],
    traces: Mapping[str, Mapping[str, str] | None] | None = None,
) -> None:
    """Complete each alert with its outcome: stored and written to `alert-outcomes` in
    the same transaction (A6). Every outcome of the dispatcher goes through here, with
    the trace of its alert request when known (`traces` by alert id, X4)."""
    if not outcomes:
        return
    await work.alerts.complete(outcomes)
    for o in outcomes:
        headers = traces.get(o.alert_id) if traces else None
        work.publish(topics.ALERT_OUTCOMES, o.profile_id, o, headers)


async def finish(work: AlertWork, alert_ids: Sequence[str]) -> None:
    """Complete every alert among `alert_ids` whose deliveries are all done, exactly once
    (the alert is locked and must still be `sending`)."""
    if not alert_ids:
        return
    await _complete(work, await work.alerts.lock_sending(alert_ids))


async def _complete(work: AlertWork, alerts: Sequence[SendingAlert]) -> None:
    """Complete each of the locked `alerts` whose deliveries are all done. Lock first, read
    deliveries after: a concurrent worker that finished a sibling mail has committed by
    the time the lock is granted, so its delivery is seen."""
    if not alerts:
        return
    deliveries = await work.alerts.delivery_statuses([a.alert_id for a in alerts])
    outcomes = []
    for a in alerts:
        outcome = decide(deliveries.get(a.alert_id, {}))
        if outcome is None:
            continue
        outcomes.append(
            AlertOutcome(
                type=outcome.type,
                alert_id=a.alert_id,
                account_id=a.account_id,
                flow_id=a.flow_id,
                step_id=a.step_id,
                profile_id=a.profile_id,
                recipients=outcome.recipients,
                failed_recipients=outcome.failed_recipients,
                reason=outcome.reason,
            )
        )
    await record_outcome(work, outcomes, {a.alert_id: a.trace for a in alerts})


async def on_final(work: AlertWork, finished: Sequence[QueuedMail]) -> None:
    """Mails marked sent or failed: record each recipient's delivery (A9: a 5xx is kept
    per recipient) and complete every alert whose mails are all done (A5, A6)."""
    alert_mails = [m for m in finished if m.kind == ALERT]
    if not alert_mails:
        return
    await _complete(work, await work.alerts.finish_and_lock(alert_mails))


async def admit(work: AlertWork, claimed: Sequence[QueuedMail]) -> set[int]:
    """The claimed mails to send now. A8: confirmation mails count against the sending
    limit as alerts do, or a flow saved with many new recipients could mail without
    bound."""
    others = [m for m in claimed if m.kind != ALERT]
    alert_mails = [m for m in claimed if m.kind == ALERT]
    if alert_mails:
        alert_mails = await drop_unconfirmed(work, alert_mails)
    return await within_limit(work, [*others, *alert_mails])


async def drop_unconfirmed(work: AlertWork, claimed: Sequence[QueuedMail]) -> list[QueuedMail]:
    """A5 at send time: a recipient who unsubscribed (or was re-added and has not confirmed
    again), or was removed from the alert's action, since the alert was queued is not
    mailed; the mail is cancelled and the delivery recorded as skipped."""
    states = await work.recipients.states(claimed)
    refused = {mail_id: s for mail_id, s in states.items() if s != "confirmed"}
    if not refused:
        return list(claimed)
    await finish(work, await work.mails.cancel(refused, NOT_CONFIRMED))
    return [m for m in claimed if m.id not in refused]


async def within_limit(work: AlertWork, claimed: Sequence[QueuedMail]) -> set[int]:
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
    deferred: list[int] = []
    until = None
    for account_id in sorted(first):
        wanted = sorted(first[account_id], key=lambda m: m.id)
        opened = await work.limits.open_window(account_id)
        n = admissible(opened.used, opened.limit, len(wanted))
        admitted |= {m.id for m in wanted[:n]}
        deferred += [m.id for m in wanted[n:]]
        until = opened.window.end  # the same window for every account: one clock reading
        if n:
            await work.limits.count_sent(account_id, opened.window.start, n)
    if deferred and until is not None:
        await work.mails.defer(deferred, until)
    return admitted
