"""An alert's life once its mails are queued, in one place: admission at send time
(recipient still confirmed, A5; the account's sending limit, A8), the recording of every
outcome (`record_outcome`, the one way an alert completes), and the final step when its
mails are done (A6, A9).

`AlertDelivery` is the dispatcher's side of the mail worker (`shared.mail_worker.
MailHooks`): the worker runs it in its own units of work, and the outcomes it records go
to the outbox of the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from services.alert_dispatcher.domain.limits import admissible, window_at
from services.alert_dispatcher.domain.outcomes import decide
from services.alert_dispatcher.ports import AlertStore
from shared.contracts import AlertOutcome
from shared.db.mail_queue import QueuedMail
from shared.db.uow import UnitOfWork
from shared.settings import Settings

ALERT = "alert"
CONFIRMATION = "recipient-confirmation"
NOT_CONFIRMED = "recipient not confirmed"


async def record_outcome(
    store: AlertStore,
    outcomes: Sequence[AlertOutcome],
    traces: Mapping[str, Mapping[str, str] | None] | None = None,
) -> None:
    """Complete each alert with its outcome: stored and written to `alert-outcomes` in
    the same transaction (A6). Every outcome of the dispatcher goes through here, with
    the trace of its alert request when known (`traces` by alert id, X4)."""
    if not outcomes:
        return
    await store.complete_alerts(outcomes)
    for o in outcomes:
        store.publish_outcome(o, traces.get(o.alert_id) if traces else None)


async def finish(store: AlertStore, alert_ids: Sequence[str]) -> None:
    """Complete every alert among `alert_ids` whose deliveries are all done, exactly once
    (the alert is locked and must still be `sending`)."""
    if not alert_ids:
        return
    # Lock first, read deliveries after: a concurrent worker that finished a sibling mail
    # has committed by the time the lock is granted, so its delivery is seen.
    alerts = await store.lock_sending(alert_ids)
    if not alerts:
        return
    deliveries = await store.delivery_statuses([a.alert_id for a in alerts])
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
    await record_outcome(store, outcomes, {a.alert_id: a.trace for a in alerts})


async def on_final(store: AlertStore, finished: Sequence[QueuedMail]) -> None:
    """Mails marked sent or failed: record each recipient's delivery (A9: a 5xx is kept
    per recipient) and complete every alert whose mails are all done (A5, A6)."""
    alert_mails = [m for m in finished if m.kind == ALERT]
    if not alert_mails:
        return
    await finish(store, await store.finish_deliveries(alert_mails))


async def admit(store: AlertStore, claimed: Sequence[QueuedMail], settings: Settings) -> set[int]:
    """The claimed mails to send now. A8: confirmation mails count against the sending
    limit as alerts do, or a flow saved with many new recipients could mail without
    bound."""
    others = [m for m in claimed if m.kind != ALERT]
    alert_mails = [m for m in claimed if m.kind == ALERT]
    if alert_mails:
        alert_mails = await drop_unconfirmed(store, alert_mails)
    return await within_limit(store, [*others, *alert_mails], settings)


async def drop_unconfirmed(store: AlertStore, claimed: Sequence[QueuedMail]) -> list[QueuedMail]:
    """A5 at send time: a recipient who unsubscribed (or was re-added and has not confirmed
    again), or was removed from the alert's action, since the alert was queued is not
    mailed; the mail is cancelled and the delivery recorded as skipped."""
    states = await store.recipient_states(claimed)
    refused = {mail_id: s for mail_id, s in states.items() if s != "confirmed"}
    if not refused:
        return list(claimed)
    await finish(store, await store.skip_mails(refused, NOT_CONFIRMED))
    return [m for m in claimed if m.id not in refused]


async def within_limit(
    store: AlertStore, claimed: Sequence[QueuedMail], settings: Settings
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
    window = window_at(await store.now(), settings.alert_send_window_s)
    deferred: list[int] = []
    for account_id in sorted(first):
        wanted = sorted(first[account_id], key=lambda m: m.id)
        limit = await store.send_limit(account_id, settings.alert_send_limit_per_hour)
        used = await store.lock_window(account_id, window.start)
        n = admissible(used, limit, len(wanted))
        admitted |= {m.id for m in wanted[:n]}
        deferred += [m.id for m in wanted[n:]]
        if n:
            await store.count_sent(account_id, window.start, n)
    if deferred:
        await store.defer(deferred, window.end)
    return admitted


class AlertDelivery:
    """The mail worker's hooks for the dispatcher's queue (`shared.mail_worker.MailHooks`):
    each call works through a store on the worker's unit of work."""

    def __init__(self, settings: Settings, store: Callable[[UnitOfWork], AlertStore]) -> None:
        self._settings = settings
        self._store = store

    async def admit(self, uow: UnitOfWork, claimed: Sequence[QueuedMail]) -> set[int]:
        return await admit(self._store(uow), claimed, self._settings)

    async def on_final(self, uow: UnitOfWork, finished: Sequence[QueuedMail]) -> None:
        await on_final(self._store(uow), finished)
