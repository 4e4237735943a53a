"""The alert dispatcher's use cases: register recipients when flows are saved, turn alert
requests into queued mails or skipped outcomes, confirm and unsubscribe recipients, and
send them confirmation mails. They work over `ports.AlertStore`; what happens to an
alert's mails after they are queued is `delivery.py`'s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from services.alert_dispatcher import delivery
from services.alert_dispatcher.adapters import mails
from services.alert_dispatcher.delivery import ALERT, CONFIRMATION
from services.alert_dispatcher.domain.outcomes import NO_CONFIRMED
from services.alert_dispatcher.domain.recipients import (
    Clicked,
    Recipient,
    added_to_actions,
    alert_addresses,
)
from services.alert_dispatcher.ports import (
    ActionKey,
    AlertAction,
    AlertStore,
    Delivery,
    NewAlert,
    RecipientStore,
)
from shared.contracts import AlertOutcome, AlertRequested, FlowDefinition
from shared.contracts.flows import FlowDeleted
from shared.domain.flow_rules import alert_steps, flow_problems
from shared.domain.identity import derived_id
from shared.logging import get_logger
from shared.pages.accounts import PageSettings
from shared.ports import OutgoingMail
from shared.privacy import hash_secret, subject_hashes
from shared.received import Received
from shared.settings import Settings
from shared.templates import run_with_budget

__all__ = ["ALERT", "CONFIRMATION", "DEFINITIONS", "REMOVED"]

log = get_logger(__name__)

DEFINITIONS = "alert_dispatcher.flow-definitions"
REMOVED = "recipient removed from the alert"


# --- flows saved (A1, A3, A7) ------------------------------------------------------------


async def save_definitions(
    store: AlertStore, items: list[Received[Any]], settings: Settings
) -> None:
    """A1/A7 on save (a rejected version is dead-lettered with the reason, recorded for
    the API, and the previous version stays), then A3 for the recipients it adds."""
    for item in items:
        msg = item.message
        if isinstance(msg, FlowDeleted):
            await store.delete_flow(msg.account_id, msg.flow_id)
            continue
        flow: FlowDefinition = msg
        errors = flow_problems(flow)
        if errors:
            await store.reject_version(flow.account_id, flow.flow_id, flow.version, errors)
            store.dead_letter(DEFINITIONS, item.record, "invalid flow: " + "; ".join(errors))
            log.info("flow version rejected", flow_id=flow.flow_id, version=flow.version)
            continue
        if not await store.take_version(flow.account_id, flow.flow_id, flow.version):
            continue  # an older or repeated version changes nothing (F1)
        await _apply_actions(store, flow, settings)


async def _apply_actions(store: AlertStore, flow: FlowDefinition, settings: Settings) -> None:
    previous = await store.flow_actions(flow.account_id, flow.flow_id)
    steps = alert_steps(flow)
    addressed = [alert_addresses(s.recipients) for s in steps]
    actions = [AlertAction(s.id, s.mode, list(a)) for s, a in zip(steps, addressed, strict=True)]
    await store.replace_actions(flow.account_id, flow.flow_id, flow.version, actions)
    everyone = sorted({e for a in actions for e in a.recipients})
    current = await store.recipients(flow.account_id, everyone, lock=True)
    # The first step that lists a recipient asks them to confirm: its sender, its spelling.
    sender: dict[str, str] = {}
    written: dict[str, str] = {}
    for step, action, spelled in reversed(list(zip(steps, actions, addressed, strict=True))):
        sender.update(dict.fromkeys(action.recipients, step.from_email))
        written.update(spelled)
    pages = await _pages(store, flow.account_id)
    confirmations: list[OutgoingMail] = []
    steps_listing = [(a.step_id, a.recipients) for a in actions]
    for change in added_to_actions(current, previous, steps_listing, written):
        r = change.recipient
        await store.save_recipient(flow.account_id, r)
        if change.send_confirmation:
            await store.mark_asked(flow.account_id, r.email, sender[r.email])
            confirmations.append(
                _confirmation(settings, flow.account_id, r, sender[r.email], pages, "")
            )
    await store.queue_mails(confirmations)


async def _pages(store: RecipientStore, account_id: str) -> PageSettings:
    return (await store.pages([account_id])).get(account_id, PageSettings())


def _confirmation(
    settings: Settings,
    account_id: str,
    r: Recipient,
    mail_from: str,
    pages: PageSettings | None,
    renewal: str,
    dedupe: str | None = None,
) -> OutgoingMail:
    return OutgoingMail(
        dedupe_key=dedupe
        or derived_id(
            "confirm", account_id, r.email, str(r.generation), *([renewal] if renewal else [])
        ),
        kind=CONFIRMATION,
        account_id=account_id,
        message=mails.confirmation(
            settings, account_id, r.email, r.generation, mail_from, pages, renewal, r.mail_to
        ),
        mail_from=mail_from,
        rcpt_to=r.mail_to,
    )


# --- confirmation mails asked for by people (A4, C12) ------------------------------------


async def renew_confirmation(
    store: AlertStore, settings: Settings, account_id: str, email: str, now: datetime
) -> bool:
    """C12: the page of an expired confirm link sends a new confirmation mail for the
    recipient's current generation, from the sender that asked last; at most one a day.
    False when the recipient is no longer waiting for a confirmation."""
    current = (await store.recipients(account_id, [email], lock=True)).get(email)
    if current is None or current.status != "unconfirmed":
        return False
    asked = await store.asked(account_id, email)
    mail_from = (asked.sender if asked else None) or mails.DEFAULT_FROM
    await store.mark_asked(account_id, email, mail_from)
    pages = await _pages(store, account_id)
    renewal = derived_id("renewed", now.date().isoformat())
    await store.queue_mails(
        [_confirmation(settings, account_id, current, mail_from, pages, renewal)]
    )
    return True


@dataclass(frozen=True)
class Resent:
    """What re-sending a confirmation did: the recipient as found (None: unknown) and
    the queued mail (None: not unconfirmed, nothing sent)."""

    recipient: Recipient | None
    mail_id: int | None = None


async def resend_confirmation(
    store: AlertStore, settings: Settings, account_id: str, email: str, nonce: str
) -> Resent:
    """An operator re-sends an unconfirmed recipient's confirmation mail (A2, A4): the
    same link as the last one (same generation), so an earlier mail keeps working too,
    from the sender of the last confirmation mail."""
    current = (await store.recipients(account_id, [email], lock=True)).get(email)
    if current is None or current.status != "unconfirmed":
        return Resent(current)
    asked = await store.asked(account_id, email)
    sender = (asked.sender if asked else None) or await store.last_sender(
        account_id, current.mail_to, CONFIRMATION
    )
    sender = sender or settings.smtp_username or "alerts@localhost"
    dedupe = derived_id("confirm", account_id, email, str(current.generation), "resend", nonce)
    mail = _confirmation(settings, account_id, current, sender, None, "", dedupe)
    queued = await store.queue_mails([mail])
    return Resent(current, next(iter(queued.values())))


async def click(
    store: AlertStore,
    account_id: str,
    email: str,
    generation: int,
    decide: Callable[[Recipient | None, int], Clicked],
) -> Clicked:
    """A4: apply a confirm or unsubscribe click (idempotent). Only the recipient's alert
    opt-in changes: profile consent and suppression are another service's and untouched."""
    current = (await store.recipients(account_id, [email], lock=True)).get(email)
    result = decide(current, generation)
    if result.recipient is not None:
        await store.save_recipient(account_id, result.recipient)
    return result


# --- alert requests (A5, A7) -------------------------------------------------------------


@dataclass
class _Batch:
    """What a batch of alert requests comes to, written at the end in a few statements."""

    deliveries: list[Delivery] = field(default_factory=list)
    outcomes: list[AlertOutcome] = field(default_factory=list)
    outgoing: list[tuple[str, str, OutgoingMail]] = field(default_factory=list)


async def dispatch(
    store: AlertStore, items: list[Received[AlertRequested]], settings: Settings
) -> None:
    """A5: queue one mail per confirmed recipient (checked again when the mail is sent),
    or record `skipped` at once when none is confirmed."""
    requests = [i.message for i in items]
    await store.add_alerts(_new_alerts(items, settings))
    by_account: dict[str, set[str]] = {}
    for r in requests:
        by_account.setdefault(r.account_id, set()).update(alert_addresses(r.action.recipients))
    known = {a: await store.recipients(a, sorted(e)) for a, e in by_account.items()}
    current = await store.action_recipients({_key(r) for r in requests})
    pages = await store.pages(list(by_account))
    batch = _Batch()
    for request in requests:
        language = (pages.get(request.account_id) or PageSettings()).language
        confirmed = _confirmed(
            batch, request, known[request.account_id], current.get(_key(request))
        )
        await _build(batch, request, confirmed, language, settings)
    queued = await store.queue_mails([m for _, _, m in batch.outgoing])
    batch.deliveries += [
        Delivery(alert_id, email, queued[m.dedupe_key], "pending")
        for alert_id, email, m in batch.outgoing
        if m.dedupe_key in queued
    ]
    await store.add_deliveries(batch.deliveries)
    traces = {i.message.alert_id: i.trace.headers() for i in reversed(items)}
    await delivery.record_outcome(store, batch.outcomes, traces)


def _key(request: AlertRequested) -> ActionKey:
    return ActionKey(request.account_id, request.flow_id, request.step_id)


def _new_alerts(items: list[Received[AlertRequested]], settings: Settings) -> list[NewAlert]:
    """The alerts as stored, each with its request's trace (X4)."""
    secret = hash_secret(settings)
    return [
        NewAlert(
            alert_id=r.alert_id,
            account_id=r.account_id,
            flow_id=r.flow_id,
            flow_version=r.flow_version,
            step_id=r.step_id,
            profile_id=r.profile_id,
            requested_at=r.requested_at,
            subject_hashes=subject_hashes(secret, r.profile.email, r.profile.phone_number),
            trace=i.trace.headers(),
        )
        for i in items
        for r in (i.message,)
    ]


def _confirmed(
    batch: _Batch,
    request: AlertRequested,
    statuses: dict[str, Recipient],
    now_on: set[str] | None,
) -> list[Recipient]:
    """The request's recipients who get the alert; the others are recorded as skipped
    with the reason."""
    written = alert_addresses(request.action.recipients)
    targets = list(written)
    if now_on is not None:
        # A5: an alert held for review or waiting on a delay was requested with the
        # recipients of its time; whoever was removed from the action since is not mailed.
        for email in [e for e in targets if e not in now_on]:
            batch.deliveries.append(Delivery(request.alert_id, email, None, "skipped", REMOVED))
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
            batch.deliveries.append(
                Delivery(request.alert_id, email, None, "skipped", f"recipient {status}")
            )
    return confirmed


async def _build(
    batch: _Batch,
    request: AlertRequested,
    confirmed: list[Recipient],
    language: str | None,
    settings: Settings,
) -> None:
    """One mail per confirmed recipient, or the alert's outcome when there is none to send."""
    if not confirmed:
        batch.outcomes.append(_skipped(request))
        return
    try:
        # Off the event loop and in a time and size budget (A7): a template bomb fails
        # its own alert, with the reason, and nobody else's.
        parts = await run_with_budget(partial(mails.rendered, request))
        built = [
            (
                rcpt,
                mails.alert(
                    settings, request, rcpt.email, rcpt.generation, language, parts, rcpt.mail_to
                ),
            )
            for rcpt in confirmed
        ]
    except Exception as exc:
        # Whatever a tenant's template or values do, the alert gets an outcome.
        reason = f"Failed: the alert could not be built ({type(exc).__name__}: {exc})"
        log.warning("alert not built", alert_id=request.alert_id, reason=reason)
        batch.outcomes.append(_skipped(request, "failed", reason[:1000]))
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
        batch.outgoing.append((request.alert_id, rcpt.email, mail))


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
